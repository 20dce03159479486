// Command kubeq-conformance is the Go client's adapter for tests/protocol: it takes a Redis
// URL, a key prefix and one JSON request, does it with package kubeq, and prints the reply.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"kubeq.dev/clients/go/kubeq"
)

type request struct {
	Op    string      `json:"op"`
	Queue string      `json:"queue"`
	Jobs  []kubeq.Job `json:"jobs"`
	ID    string      `json:"id"`
	Wait  float64     `json:"wait"`
	Abort bool        `json:"abort"`
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: kubeq-conformance REDIS_URL PREFIX REQUEST_JSON")
		os.Exit(2)
	}
	var req request
	if err := json.Unmarshal([]byte(os.Args[3]), &req); err != nil {
		fail(err)
	}
	c, err := kubeq.Dial(os.Args[1], os.Args[2])
	if err != nil {
		fail(err)
	}
	defer c.Close()
	var reply any
	switch req.Op {
	case "enqueue":
		ids, err := c.Enqueue(req.Queue, req.Jobs...)
		if err != nil {
			fail(err)
		}
		reply = map[string]any{"ids": ids}
	case "status":
		o, err := c.Status(req.Queue, req.ID)
		if err != nil {
			fail(err)
		}
		reply = map[string]any{"status": o.Status}
	case "result":
		o, err := c.Wait(req.Queue, req.ID, time.Duration(req.Wait*float64(time.Second)))
		if err != nil {
			fail(err)
		}
		out := map[string]any{"status": o.Status}
		if o.Status == "finished" {
			out["result"] = o.Result
		} else if o.Status == "failed" {
			out["error"] = o.Error
		}
		reply = out
	case "cancel":
		stopped, err := c.Cancel(req.Queue, req.ID, req.Abort)
		if err != nil {
			fail(err)
		}
		reply = map[string]any{"stopped": stopped}
	default:
		fail(fmt.Errorf("unknown op %q", req.Op))
	}
	if err := json.NewEncoder(os.Stdout).Encode(reply); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
