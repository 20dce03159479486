// Command kubeq-gateway-demo enqueues one job through `kubeq gateway` and waits for its
// result: kubeq-gateway-demo GATEWAY_URL NAMESPACE TASKQUEUE TASK ARGS_JSON (token from
// $KUBEQ_TOKEN_FILE, default the projected token path). It prints the outcome as JSON.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"kubeq.dev/clients/go/kubeq"
)

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: kubeq-gateway-demo GATEWAY_URL NAMESPACE TASKQUEUE TASK ARGS_JSON")
		os.Exit(2)
	}
	var args []any
	if err := json.Unmarshal([]byte(os.Args[5]), &args); err != nil {
		fail(err)
	}
	g := &kubeq.Gateway{BaseURL: os.Args[1], Namespace: os.Args[2], TaskQueue: os.Args[3],
		TokenFile: os.Getenv("KUBEQ_TOKEN_FILE")}
	refs, err := g.Enqueue(kubeq.Job{Task: os.Args[4], Args: args})
	if err != nil {
		fail(err)
	}
	outcome, err := g.Wait(refs[0], 120*time.Second)
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"ref": refs[0], "outcome": outcome}); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
