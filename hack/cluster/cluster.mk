# Placeholder: replaced by the local control-plane targets (issue 3).
.PHONY: cluster-bin cluster-up cluster-down
cluster-bin:
	@true
cluster-up:
	@echo "cluster-up: not yet available" && false
cluster-down:
	@true
