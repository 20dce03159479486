"""Everything that talks to Redis: the key scheme, connections from URLs, the Lua scripts and
how their arguments and replies are laid out, queue statistics, partitions and the documents
workers publish. See docs/architecture.md, "Layers"."""
