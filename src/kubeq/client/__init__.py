"""What an application calls to enqueue and to follow jobs: App and Task, Queue, Job handles,
the enqueue plan, the canvas (chain, group, chord) and the job context a task reads. See
docs/architecture.md, "A job's path"."""
