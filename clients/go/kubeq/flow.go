package kubeq

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// FlowJob is a Job with the debounce or singleton options of docs/patterns.md, or the batch
// it is an item of: a call of a held key joins its key's job, and the id it gets names that
// job. The gateway (Gateway.EnqueueFlow) takes debounce and singleton; the direct Redis
// Client (Client.EnqueueFlow) takes those and Batch.
type FlowJob struct {
	Job
	// Debounce: seconds of quiet before the job of DebounceKey runs (its newest arguments).
	Debounce    float64 `json:"debounce,omitempty"`
	DebounceMax float64 `json:"debounce_max,omitempty"`
	DebounceKey string  `json:"debounce_key,omitempty"`
	// Singleton: skip, replace, keep_latest or cancel_running, per SingletonKey.
	Singleton    string `json:"singleton,omitempty"`
	SingletonKey string `json:"singleton_key,omitempty"`
	// Batch: the job is one item (Args holds exactly it) of a batch task; give the task's
	// own kubeq.Batch (max_size, max_wait, key). The direct Client only.
	Batch *Batch `json:"-"`
}

// Batch is a batch task's kubeq.Batch as its items' producer gives it: the batch closes at
// MaxSize items or MaxWait seconds after its first item; Key ("" : the task's name) keeps one
// batch per key.
type Batch struct {
	MaxSize int
	MaxWait float64
	Key     string
}

// EnqueueFlow posts debounced or singleton jobs and returns the job each call went to.
func (g *Gateway) EnqueueFlow(jobs ...FlowJob) ([]Ref, error) {
	for i, j := range jobs {
		if j.Batch != nil {
			return nil, fmt.Errorf("jobs[%d].batch: the gateway does not take batch items "+
				"(send them with the direct Client)", i)
		}
	}
	var reply struct {
		Jobs []Ref `json:"jobs"`
	}
	err := g.do(http.MethodPost, "", nil, map[string]any{"jobs": jobs}, &reply)
	return reply.Jobs, err
}

var singletonModes = map[string]bool{
	"skip": true, "replace": true, "keep_latest": true, "cancel_running": true}

// EnqueueFlow sends each job to queue through flow.lua (debounce, singleton) or batch.lua
// (Batch), as kubeq's Python client does (docs/protocol.md), and returns, in order, the id
// of the job each call went to: its own, or the key's job it joined.
func (c *Client) EnqueueFlow(queue string, jobs ...FlowJob) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := make([][]string, len(jobs))
	for i, j := range jobs {
		args, err := c.flowArgs(queue, j)
		if err != nil {
			return nil, fmt.Errorf("jobs[%d]%w", i, err)
		}
		calls[i] = args
	}
	if _, err := c.cn.do(0, "SADD", c.Prefix+":queues", queue); err != nil {
		return nil, err
	}
	ids := make([]string, len(jobs))
	for i, args := range calls {
		name := "flow"
		if jobs[i].Batch != nil {
			name = "batch"
		}
		reply, err := c.script(name, c.keys(queue), args...)
		if err != nil {
			return nil, err
		}
		pair, _ := reply.([]any)
		if name == "batch" && len(pair) == 1 {
			pair, _ = pair[0].([]any)
		}
		if len(pair) != 2 {
			return nil, fmt.Errorf("jobs[%d]: %s.lua answered %v", i, name, reply)
		}
		if n, _ := pair[0].(int64); n < 0 {
			return nil, fmt.Errorf("jobs[%d]: refused by %s.lua", i, name)
		}
		ids[i], _ = pair[1].(string)
	}
	return ids, nil
}

// flowArgs checks one job and lays out its flow.lua or batch.lua ARGV.
func (c *Client) flowArgs(queue string, j FlowJob) ([]string, error) {
	if j.Task == "" {
		return nil, errors.New(".task: name the task to run")
	}
	if j.ID != "" {
		return nil, errors.New(".id: cannot be given with debounce, singleton or batch " +
			"(the key names the job)")
	}
	mode, key, keyName, window, bound := "", j.Task, "", int64(0), int64(0)
	given := 0
	if j.Debounce != 0 || j.DebounceMax != 0 || j.DebounceKey != "" {
		given++
		if j.Debounce <= 0 {
			return nil, fmt.Errorf(".debounce: must be > 0 seconds, got %v", j.Debounce)
		}
		if j.DebounceMax != 0 && j.DebounceMax < j.Debounce {
			return nil, fmt.Errorf(".debounce_max: must be at least debounce (%v s), got %v",
				j.Debounce, j.DebounceMax)
		}
		mode, window = "debounce", max(1, int64(j.Debounce*1000))
		if j.DebounceMax > 0 {
			bound = max(1, int64(j.DebounceMax*1000))
		}
		if j.DebounceKey != "" {
			key, keyName = j.DebounceKey, "debounce_key"
		}
	}
	if j.Singleton != "" || j.SingletonKey != "" {
		given++
		if !singletonModes[j.Singleton] {
			return nil, fmt.Errorf(".singleton: must be one of skip, replace, keep_latest, "+
				"cancel_running, got %q", j.Singleton)
		}
		mode = j.Singleton
		if j.SingletonKey != "" {
			key, keyName = j.SingletonKey, "singleton_key"
		}
	}
	if j.Batch != nil {
		given++
		b := j.Batch
		if b.MaxSize < 1 || b.MaxSize > 10000 || b.MaxWait <= 0 {
			return nil, fmt.Errorf(".batch: max_size must be 1 to 10000 and max_wait > 0 "+
				"seconds (the task's kubeq.Batch), got %d and %v", b.MaxSize, b.MaxWait)
		}
		if len(j.Args) != 1 || len(j.Kwargs) > 0 {
			return nil, fmt.Errorf(".args: a batch item is exactly one positional argument, "+
				"got %d and %d keyword arguments", len(j.Args), len(j.Kwargs))
		}
		mode, window, bound = "batch", max(1, int64(b.MaxWait*1000)), int64(b.MaxSize)
		if b.Key != "" {
			key, keyName = b.Key, "batch.key"
		}
	}
	if given != 1 {
		return nil, errors.New(": give one of debounce, singleton or batch (else use Enqueue)")
	}
	if keyName != "" && !printable(key) {
		return nil, fmt.Errorf(".%s: must be a printable string of 1 to 200 characters, got %q",
			keyName, key)
	}
	if j.Delay > 0 && (mode == "debounce" || mode == "batch") {
		return nil, fmt.Errorf(".delay: cannot be given with %s (the window sets the start)", mode)
	}
	payload, err := encode(j.Job)
	if err != nil {
		return nil, err
	}
	priority, due, ttl := 5, "0", 86400
	if j.Priority != nil {
		priority = *j.Priority
	}
	if priority < 0 || priority > 9 {
		return nil, fmt.Errorf(".priority: %d is not 0 to 9", priority)
	}
	if j.Delay > 0 {
		due = "+" + strconv.FormatInt(int64(j.Delay*1000), 10)
	}
	if j.ResultTTL > 0 {
		ttl = j.ResultTTL
	}
	control, err := controlOf(j.Job)
	if err != nil {
		return nil, fmt.Errorf(".%w", err)
	}
	if mode == "batch" && control != "" {
		return nil, errors.New(".fair_key, .tags: a batch item takes neither (its batch runs as one job)")
	}
	token := make([]byte, 8)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	args := []string{c.base(queue), mode, j.Task + ":" + key, strconv.FormatInt(window, 10),
		strconv.FormatInt(bound, 10), hex.EncodeToString(token)}
	if mode == "batch" {
		carrier, err := json.Marshal(map[string]any{"task": j.Task, "args": []any{},
			"kwargs": map[string]any{}, "options": map[string]int{"batch": 1}})
		if err != nil {
			return nil, err
		}
		args = append(args, string(carrier))
	}
	return append(args, NewID(), string(payload), strconv.Itoa(priority), due, "5",
		strconv.Itoa(ttl), control), nil
}
