# The external judges of tests/judges, included by the top-level Makefile.
#   judges-bin   build psa-check, kube-score and promlint (Go module proxy) and install checkov
#                (PyPI) into ~/.cache/kubeq (hack/judges/build.sh; a no-op once built)
.PHONY: judges-bin

judges-bin:
	bash hack/judges/build.sh
