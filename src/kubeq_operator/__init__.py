"""kubeq operator: kopf handlers that scale TaskQueue worker Deployments."""
