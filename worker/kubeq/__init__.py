"""kubeq: a Redis task queue whose workers run on Kubernetes and scale themselves."""
