package kubeq

import (
	"crypto/rand"
	"crypto/sha1"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// The scripts of protocol version 1, each in full (what it uses of the shared parts, then its
// own text), copied from kubeq's store by `go generate ./...` (../genlua.py); tests/protocol
// fails, naming that command, when a copy is stale.
//
//go:generate sh -c "$DOLLAR{KUBEQ_PYTHON:-../../../.venv/bin/python} ../genlua.py"
//go:embed lua/*.lua
var scripts embed.FS

type loaded struct {
	text string
	sha  string
}

var texts sync.Map // script name -> loaded

// scriptText is one script as kubeq.store.scripts.source(name) makes it and its SHA1, read
// once.
func scriptText(name string) (loaded, error) {
	if l, ok := texts.Load(name); ok {
		return l.(loaded), nil
	}
	text, err := scripts.ReadFile("lua/" + name + ".lua")
	if err != nil {
		return loaded{}, err
	}
	sum := sha1.Sum(text)
	l := loaded{string(text), hex.EncodeToString(sum[:])}
	texts.Store(name, l)
	return l, nil
}

// Job is one job to enqueue: a task name, its arguments and the options of apply_async.
type Job struct {
	Task   string         `json:"task"`
	Args   []any          `json:"args,omitempty"`
	Kwargs map[string]any `json:"kwargs,omitempty"`
	// ID makes the enqueue idempotent while the job is live; empty: a random id.
	ID          string  `json:"id,omitempty"`
	Queue       string  `json:"queue,omitempty"`
	Priority    *int    `json:"priority,omitempty"`
	Delay       float64 `json:"delay,omitempty"`
	Timeout     float64 `json:"timeout,omitempty"`
	MaxAttempts int     `json:"max_attempts,omitempty"`
	ResultTTL   int     `json:"result_ttl,omitempty"`
	// FairKey names the job's tenant: among ready jobs of one priority, keys take turns
	// (docs/fairness.md). Empty: no key (the job keeps the queue's own order).
	FairKey string `json:"fair_key,omitempty"`
	// Tags label the job, to find it later (kubeq jobs --tag, Queue.find): at most 16, each
	// 1-64 characters of letters, digits and _ . : = / -.
	Tags []string `json:"tags,omitempty"`
}

// Outcome is how a job stands: Status, and Result (JSON) or Error once it has ended.
type Outcome struct {
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Reason string          `json:"reason,omitempty"`
}

// Ended reports whether the job has ended (finished, failed, cancelled, aborted, expired).
func (o Outcome) Ended() bool {
	switch o.Status {
	case "finished", "failed", "cancelled", "aborted", "expired":
		return true
	}
	return false
}

// Client speaks the protocol straight to one Redis (not safe for concurrent use).
type Client struct {
	Prefix string
	cn     *conn
	mu     sync.Mutex
}

// Dial connects to Redis (redis:// or rediss://, password in the URL); prefix "" is "kubeq".
func Dial(redisURL, prefix string) (*Client, error) {
	cn, err := dial(redisURL)
	if err != nil {
		return nil, err
	}
	if prefix == "" {
		prefix = "kubeq"
	}
	return &Client{Prefix: prefix, cn: cn}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.cn.c.Close() }

func (c *Client) base(queue string) string { return c.Prefix + ":{" + queue + "}:" }

func (c *Client) keys(queue string) []string {
	b := c.base(queue)
	return []string{b + "ready", b + "delayed", b + "active", b + "dead", b + "workers",
		b + "busy", b + "paused", b + "wake", b + "fence"}
}

func (c *Client) script(name string, keys []string, args ...string) (any, error) {
	l, err := scriptText(name)
	if err != nil {
		return nil, err
	}
	head := []string{strconv.Itoa(len(keys))}
	call := append(append(head, keys...), args...)
	reply, err := c.cn.do(0, append([]string{"EVALSHA", l.sha}, call...)...)
	var re redisError
	if errors.As(err, &re) && strings.HasPrefix(string(re), "NOSCRIPT") {
		return c.cn.do(0, append([]string{"EVAL", l.text}, call...)...)
	}
	return reply, err
}

// NewID is a random job id: 22 URL-safe characters.
func NewID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Enqueue adds jobs to queue (a job's own Queue is ignored here) and returns their ids.
// A job whose id is still live is not enqueued twice.
func (c *Client) Enqueue(queue string, jobs ...Job) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// the send token: unique to this call; a resend of the same call after a lost reply
	// carries the same one, so enqueue.lua writes nothing twice
	token := make([]byte, 8)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	args := []string{c.base(queue), strconv.Itoa(len(jobs)), hex.EncodeToString(token)}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		if j.Task == "" {
			return nil, fmt.Errorf("jobs[%d].task: name the task to run", i)
		}
		ids[i] = j.ID
		if ids[i] == "" {
			ids[i] = NewID()
		}
		payload, err := encode(j)
		if err != nil {
			return nil, fmt.Errorf("jobs[%d]: %w", i, err)
		}
		priority, due := 5, "0"
		if j.Priority != nil {
			priority = *j.Priority
		}
		if priority < 0 || priority > 9 {
			return nil, fmt.Errorf("jobs[%d].priority: %d is not 0 to 9", i, priority)
		}
		if j.Delay > 0 {
			due = "+" + strconv.FormatInt(int64(j.Delay*1000), 10)
		}
		ttl := 86400
		if j.ResultTTL > 0 {
			ttl = j.ResultTTL
		}
		control, err := controlOf(j)
		if err != nil {
			return nil, fmt.Errorf("jobs[%d].%w", i, err)
		}
		args = append(args, "1", strconv.Itoa(priority), due, "5", strconv.Itoa(ttl), control,
			ids[i], string(payload))
	}
	if _, err := c.cn.do(0, "SADD", c.Prefix+":queues", queue); err != nil {
		return nil, err
	}
	reply, err := c.script("enqueue", c.keys(queue), args...)
	if err != nil {
		return nil, err
	}
	for i, flag := range reply.([]any) {
		if flag.(int64) < 0 {
			return nil, fmt.Errorf("jobs[%d]: refused by enqueue.lua", i)
		}
	}
	return ids, nil
}

// controlOf is the job's execution-control fields for enqueue.lua (JSON; "" when none).
func controlOf(j Job) (string, error) {
	control := map[string]any{}
	if j.FairKey != "" {
		if err := checkFairKey(j.FairKey); err != nil {
			return "", err
		}
		control["fk"] = j.FairKey
	}
	if len(j.Tags) > 0 {
		if err := checkTags(j.Tags); err != nil {
			return "", err
		}
		control["tags"] = j.Tags
	}
	if len(control) == 0 {
		return "", nil
	}
	body, err := json.Marshal(control)
	return string(body), err
}

var tagPattern = regexp.MustCompile(`^[A-Za-z0-9_.:=/-]{1,64}$`)

// checkTags refuses what kubeq refuses: more than 16 tags, or one that is not a tag.
func checkTags(tags []string) error {
	if len(tags) > 16 {
		return fmt.Errorf("tags: at most 16 tags per job, got %d", len(tags))
	}
	for _, t := range tags {
		if !tagPattern.MatchString(t) {
			return fmt.Errorf("tags: %q is not a tag: use 1-64 characters of letters, "+
				"digits, '_', '.', ':', '=', '/' or '-'", t)
		}
	}
	return nil
}

// printable is what kubeq takes as a key: 1 to 200 printable characters.
func printable(key string) bool {
	ok := key != "" && utf8.RuneCountInString(key) <= 200 && utf8.ValidString(key)
	for _, r := range key {
		ok = ok && unicode.IsPrint(r)
	}
	return ok
}

// checkFairKey refuses what kubeq refuses: more than 200 characters, or one not printable.
func checkFairKey(key string) error {
	if !printable(key) {
		return fmt.Errorf("fair_key: must be a printable string of at most 200 characters "+
			"(e.g. a tenant's name), got %q", key)
	}
	return nil
}

func encode(j Job) ([]byte, error) {
	body := map[string]any{"task": j.Task, "args": j.Args, "kwargs": j.Kwargs}
	if j.Args == nil {
		body["args"] = []any{}
	}
	if j.Kwargs == nil {
		body["kwargs"] = map[string]any{}
	}
	options := map[string]any{}
	if j.Timeout > 0 {
		options["timeout"] = j.Timeout
	}
	if j.MaxAttempts > 0 {
		options["max_attempts"] = j.MaxAttempts
	}
	if len(options) > 0 {
		body["options"] = options
	}
	return json.Marshal(body)
}

// Status reads how a job stands now ("unknown" when there is no such job).
func (c *Client) Status(queue, id string) (Outcome, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status(queue, id)
}

func (c *Client) status(queue, id string) (Outcome, error) {
	reply, err := c.cn.do(0, "HMGET", c.base(queue)+"job:"+id, "status", "result", "error", "reason")
	if err != nil {
		return Outcome{}, err
	}
	f := make([]string, 4)
	for i, v := range reply.([]any) {
		if s, ok := v.(string); ok {
			f[i] = s
		}
	}
	o := Outcome{Status: f[0], Error: f[2], Reason: f[3]}
	if o.Status == "" {
		o.Status = "unknown"
	}
	if o.Status == "finished" {
		o.Result = json.RawMessage(f[1])
		if f[1] == "" {
			o.Result = json.RawMessage("null")
		}
	}
	return o, nil
}

// Wait watches the job (its watch key, so its end pushes a done-list) and blocks on its
// done-list (no polling) until it ends or wait passes, and returns how it stands then.
func (c *Client) Wait(queue, id string, wait time.Duration) (Outcome, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	deadline := time.Now().Add(wait)
	done := c.base(queue) + "done:" + id
	watch := c.base(queue) + "watch:" + id
	for {
		// watch first, then read: a job that ends after the read pushes its done-list
		if _, err := c.cn.do(0, "SET", watch, "1", "EX", "60"); err != nil {
			return Outcome{}, err
		}
		o, err := c.status(queue, id)
		if err != nil || o.Ended() || o.Status == "unknown" {
			return o, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return o, nil
		}
		if left > 5*time.Second {
			left = 5 * time.Second
		}
		secs := strconv.FormatFloat(left.Seconds(), 'f', 3, 64)
		if _, err := c.cn.do(left, "BLMOVE", done, done, "RIGHT", "LEFT", secs); err != nil {
			return o, err
		}
	}
}

// Cancel stops a job that has not started; with abort, a running one too, or one item of
// a batch (abort_item.lua: it ends aborted, its batch runs on). It reports whether the job
// was stopped (false: it had ended, or was running and abort was false).
func (c *Client) Cancel(queue, id string, abort bool) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := "cancel"
	if abort {
		name = "abort"
	}
	reply, err := c.script(name, c.keys(queue), c.base(queue), id)
	if err != nil {
		return false, err
	}
	n := reply.(int64)
	if abort && n == 0 { // not a job abort.lua stops: perhaps an item of a batch
		if reply, err = c.script("abort_item", c.keys(queue), c.base(queue), id); err != nil {
			return false, err
		}
		n = reply.(int64)
	}
	if n < 0 {
		return false, fmt.Errorf("no job %s in queue %q", id, queue)
	}
	return n == 1 || (abort && n == 2), nil
}
