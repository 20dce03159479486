package kubeq

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A FlowJob's options travel as the gateway's body fields, beside the job's own.
func TestEnqueueFlowSendsTheOptions(t *testing.T) {
	var got map[string][]map[string]any
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &got); err != nil {
			t.Error(err)
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"jobs": [{"id": "j1", "queue": "q"}, {"id": "j1", "queue": "q"}]}`))
	}))
	defer server.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &Gateway{BaseURL: server.URL, Namespace: "ns", TaskQueue: "tq", TokenFile: token}
	refs, err := g.EnqueueFlow(
		FlowJob{Job: Job{Task: "tasks.reindex", Args: []any{"doc"}}, Debounce: 2, DebounceKey: "doc"},
		FlowJob{Job: Job{Task: "tasks.sync"}, Singleton: "keep_latest", SingletonKey: "acct"},
	)
	if err != nil || len(refs) != 2 || refs[1].ID != "j1" {
		t.Fatalf("refs %+v, err %v", refs, err)
	}
	first, second := got["jobs"][0], got["jobs"][1]
	if first["task"] != "tasks.reindex" || first["debounce"] != 2.0 || first["debounce_key"] != "doc" {
		t.Fatalf("first job sent as %v", first)
	}
	if second["singleton"] != "keep_latest" || second["singleton_key"] != "acct" {
		t.Fatalf("second job sent as %v", second)
	}
	if _, ok := first["singleton"]; ok {
		t.Fatalf("an unset option was sent: %v", first)
	}
}

// The direct Client refuses, before it sends anything, what kubeq's Python client refuses,
// naming the field; the gateway refuses batch items.
func TestEnqueueFlowRefusesNamingTheField(t *testing.T) {
	c := &Client{Prefix: "kubeq"}
	cases := map[string]FlowJob{
		"jobs[0].args: a batch item is exactly one":    {Job: Job{Task: "t", Args: []any{1, 2}}, Batch: &Batch{MaxSize: 5, MaxWait: 1}},
		"jobs[0].batch: max_size must be 1 to 10000":   {Job: Job{Task: "t", Args: []any{1}}, Batch: &Batch{MaxWait: 1}},
		"jobs[0]: give one of debounce, singleton":     {Job: Job{Task: "t"}, Debounce: 1, Singleton: "skip"},
		"jobs[0].id: cannot be given":                  {Job: Job{Task: "t", ID: "x"}, Singleton: "skip"},
		"jobs[0].singleton: must be one of":            {Job: Job{Task: "t"}, Singleton: "newest"},
		"jobs[0].debounce_max: must be at least":       {Job: Job{Task: "t"}, Debounce: 5, DebounceMax: 1},
		"jobs[0].delay: cannot be given with debounce": {Job: Job{Task: "t", Delay: 3}, Debounce: 1},
	}
	for want, job := range cases {
		_, err := c.EnqueueFlow("q", job)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("want an error starting %q, got %v", want, err)
		}
	}
	g := &Gateway{BaseURL: "http://127.0.0.1:1"}
	_, err := g.EnqueueFlow(FlowJob{Job: Job{Task: "t", Args: []any{1}}, Batch: &Batch{MaxSize: 1, MaxWait: 1}})
	if err == nil || !strings.Contains(err.Error(), "jobs[0].batch: the gateway does not take") {
		t.Errorf("the gateway was sent a batch item: %v", err)
	}
}
