"""How a workflow is kept in Redis and advanced: callbacks (on_success, on_failure, chain
links), dependencies (depends_on), the edges between jobs that both record, and the results a
chord's callback receives. The builders users call (chain, group, chord) are client API, in
kubeq.client.canvas. See docs/workflows.md."""
