package kubeq

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
