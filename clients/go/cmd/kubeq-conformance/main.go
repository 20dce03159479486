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

// job is a request's job: its Job fields, and the flow options of kubeq.FlowJob (a batch as
// {"max_size", "max_wait", "key"}).
type job struct {
	kubeq.FlowJob
	Batch *struct {
		MaxSize int     `json:"max_size"`
		MaxWait float64 `json:"max_wait"`
		Key     string  `json:"key"`
	} `json:"batch"`
}

type request struct {
	Op    string  `json:"op"`
	Queue string  `json:"queue"`
	Jobs  []job   `json:"jobs"`
	ID    string  `json:"id"`
	Wait  float64 `json:"wait"`
	Abort bool    `json:"abort"`
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
		plain, flows, flow := []kubeq.Job{}, []kubeq.FlowJob{}, false
		for _, j := range req.Jobs {
			if j.Batch != nil {
				j.FlowJob.Batch = &kubeq.Batch{MaxSize: j.Batch.MaxSize, MaxWait: j.Batch.MaxWait,
					Key: j.Batch.Key}
			}
			f := j.FlowJob
			flow = flow || f.Batch != nil || f.Debounce != 0 || f.Singleton != ""
			plain, flows = append(plain, f.Job), append(flows, f)
		}
		var ids []string
		if flow {
			ids, err = c.EnqueueFlow(req.Queue, flows...)
		} else {
			ids, err = c.Enqueue(req.Queue, plain...)
		}
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
