"""``kubeq gateway``: an HTTP API to enqueue, read, wait for and cancel jobs of a TaskQueue,
for in-cluster services of any language. Callers authenticate with their projected
ServiceAccount token (TokenReview) and are authorised by Kubernetes RBAC
(SubjectAccessReview on ``taskqueues/jobs`` in group kubeq.dev); they never see the Redis
password. The wire format is docs/protocol.md."""
