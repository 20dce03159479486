# The local Kubernetes control plane, included by the top-level Makefile.
#   cluster-bin   build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#                 helm and kubeconform from source (hack/cluster/build.sh; cached outside the
#                 checkout, a no-op once built)
#   cluster-up    start the cluster and the test node agent; kubeconfig: .cluster/kubeconfig
#                 NODE=real: a real node instead (containerd + kubelet + kube-proxy, Debian
#                 packages installed when missing); kubeconfig: .cluster-real/kubeconfig
#   cluster-down  stop everything cluster-up (or a test session) started
LOCALCLUSTER := PYTHONPATH=$(CURDIR)/hack/cluster$${PYTHONPATH:+:$$PYTHONPATH} $(PY) -m localcluster

NODE ?= agent
NODE_DEBS := $(shell cat hack/cluster/node-debs.txt)  # Debian packages of the real node

.PHONY: cluster-bin cluster-up cluster-down cluster-status node-deps

node-deps:
	bash hack/debs.sh $(NODE_DEBS)

cluster-bin:
	bash hack/cluster/build.sh

cluster-up: venv cluster-bin $(if $(filter real,$(NODE)),node-deps)
	$(LOCALCLUSTER) up --node $(NODE)

cluster-down:
	@if [ -x $(PY) ]; then $(LOCALCLUSTER) down --node $(NODE); else echo "no venv: nothing to stop"; fi

cluster-status: venv
	$(LOCALCLUSTER) status --node $(NODE)
