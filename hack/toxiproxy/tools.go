//go:build tools

// Package tools pins the Toxiproxy server and CLI for hack/toxiproxy/build.sh; nothing here is
// compiled into kubeq.
package tools

import (
	_ "github.com/Shopify/toxiproxy/v2/cmd/cli"
	_ "github.com/Shopify/toxiproxy/v2/cmd/server"
)
