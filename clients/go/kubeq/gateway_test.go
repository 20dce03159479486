package kubeq

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A 503 of the gateway comes back as a GatewayError carrying its reason and Retry-After.
func TestGatewayRefusalCarriesRetryAfter(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error": "the Kubernetes API server is unavailable"}`))
	}))
	defer server.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &Gateway{BaseURL: server.URL, Namespace: "ns", TaskQueue: "tq", TokenFile: token}
	_, err := g.Enqueue(Job{Task: "tasks.x"})
	var refusal *GatewayError
	if !errors.As(err, &refusal) {
		t.Fatalf("want a GatewayError, got %v", err)
	}
	if refusal.Status != 503 || refusal.RetryAfter != 5*time.Second || refusal.Reason == "" {
		t.Fatalf("got %+v", refusal)
	}
}

// Signal posts its body to .../signals with the token and returns how many jobs woke.
func TestGatewaySignalPostsToTheSignalsRoute(t *testing.T) {
	var path, auth string
	var body map[string]any
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, auth = r.Method+" "+r.URL.Path, r.Header.Get("Authorization")
		_ = json.NewDecoder(r.Body).Decode(&body)
		_, _ = w.Write([]byte(`{"key": "shipment:42", "queue": "q", "woke": 2}`))
	}))
	defer server.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &Gateway{BaseURL: server.URL, Namespace: "ns", TaskQueue: "tq", TokenFile: token}
	woke, err := g.Signal(Signal{Key: "shipment:42", Payload: map[string]any{"tracking": "1Z"}})
	if err != nil || woke != 2 {
		t.Fatalf("got %d, %v", woke, err)
	}
	if path != "POST /v1/namespaces/ns/taskqueues/tq/signals" || auth != "Bearer t" {
		t.Fatalf("got %q with %q", path, auth)
	}
	want := `{"key":"shipment:42","payload":{"tracking":"1Z"}}`
	if got, _ := json.Marshal(body); string(got) != want {
		t.Fatalf("sent %s, want %s", got, want)
	}
}
