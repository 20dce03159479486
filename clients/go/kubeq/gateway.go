package kubeq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultTokenFile is where a pod's projected ServiceAccount token for the gateway is
// usually mounted (a projected volume with audience "kubeq").
const DefaultTokenFile = "/var/run/secrets/kubeq/token"

// Gateway speaks to `kubeq gateway` over HTTP for one TaskQueue.
type Gateway struct {
	BaseURL   string // e.g. http://kubeq-gateway.kubeq-system.svc
	Namespace string
	TaskQueue string
	// TokenFile is read on every request (the kubelet rotates projected tokens).
	TokenFile string
	HTTP      *http.Client
}

// Ref names an enqueued job: its id and the queue it went to.
type Ref struct {
	ID    string `json:"id"`
	Queue string `json:"queue"`
}

// GatewayError is a refusal of the gateway: its HTTP status, reason and the field at fault;
// for a 429 or 503, RetryAfter is when a retry may succeed (the Retry-After header).
type GatewayError struct {
	Status     int
	Reason     string `json:"error"`
	Field      string `json:"field"`
	RetryAfter time.Duration
}

func (e *GatewayError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("gateway: %d %s (field %s)", e.Status, e.Reason, e.Field)
	}
	return fmt.Sprintf("gateway: %d %s", e.Status, e.Reason)
}

func (g *Gateway) do(method, path string, query url.Values, body any, out any) error {
	return g.call(method, "/jobs"+path, query, body, out)
}

func (g *Gateway) call(method, path string, query url.Values, body any, out any) error {
	tokenFile := g.TokenFile
	if tokenFile == "" {
		tokenFile = DefaultTokenFile
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	var data []byte
	if body != nil {
		if data, err = json.Marshal(body); err != nil {
			return err
		}
	}
	u := strings.TrimRight(g.BaseURL, "/") + "/v1/namespaces/" + url.PathEscape(g.Namespace) +
		"/taskqueues/" + url.PathEscape(g.TaskQueue) + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	client := g.HTTP
	if client == nil {
		client = &http.Client{Timeout: 90 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		refusal := &GatewayError{Status: resp.StatusCode}
		_ = json.NewDecoder(resp.Body).Decode(refusal)
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			refusal.RetryAfter = time.Duration(secs) * time.Second
		}
		return refusal
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Enqueue posts jobs (each may name its Queue) and returns where each went.
func (g *Gateway) Enqueue(jobs ...Job) ([]Ref, error) {
	var reply struct {
		Jobs []Ref `json:"jobs"`
	}
	err := g.do(http.MethodPost, "", nil, map[string]any{"jobs": jobs}, &reply)
	return reply.Jobs, err
}

// Wait blocks (on the gateway, which blocks on Redis) until the job ends or wait passes.
func (g *Gateway) Wait(ref Ref, wait time.Duration) (Outcome, error) {
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left > 60*time.Second {
			left = 60 * time.Second
		}
		if left < 0 {
			left = 0
		}
		q := url.Values{"queue": {ref.Queue}, "wait": {strconv.FormatFloat(left.Seconds(), 'f', 3, 64)}}
		var o Outcome
		if err := g.do(http.MethodGet, "/"+url.PathEscape(ref.ID)+"/result", q, nil, &o); err != nil {
			return o, err
		}
		if o.Ended() || time.Now().After(deadline) {
			return o, nil
		}
	}
}

// Cancel stops a job that has not started; with abort, a running one too.
func (g *Gateway) Cancel(ref Ref, abort bool) (bool, error) {
	q := url.Values{"queue": {ref.Queue}, "abort": {strconv.FormatBool(abort)}}
	var reply struct {
		Stopped bool `json:"stopped"`
	}
	err := g.do(http.MethodDelete, "/"+url.PathEscape(ref.ID), q, nil, &reply)
	return reply.Stopped, err
}

// Signal is what a signal delivers: Key (the key jobs wait on with kubeq.wait_for) or Job
// (a sleeping job: the key it waits for), and the Payload (any JSON) that wait_for returns.
// Queue is one of the TaskQueue's queues ("": its first); Mode "all" (every waiter, the
// default) or "one" (the oldest); TTL keeps the payload for jobs that wait later (nil: the
// gateway's default, 7 days).
type Signal struct {
	Key     string   `json:"key,omitempty"`
	Job     string   `json:"job,omitempty"`
	Payload any      `json:"payload"`
	Queue   string   `json:"queue,omitempty"`
	Mode    string   `json:"mode,omitempty"`
	TTL     *float64 `json:"ttl,omitempty"`
}

// Signal delivers a signal and returns how many jobs woke.
func (g *Gateway) Signal(s Signal) (int, error) {
	var reply struct {
		Woke int `json:"woke"`
	}
	err := g.call(http.MethodPost, "/signals", nil, s, &reply)
	return reply.Woke, err
}
