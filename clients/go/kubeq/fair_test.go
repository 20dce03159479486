package kubeq

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startRedis runs a throwaway redis-server on a free loopback port (skips without one).
func startRedis(t *testing.T) *Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not on the PATH")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := Dial("redis://127.0.0.1:"+port, "")
		if err == nil {
			if _, err = c.cn.do(0, "PING"); err == nil {
				t.Cleanup(func() { _ = c.Close() })
				return c
			}
			_ = c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A job enqueued with a FairKey joins its key's turn: the queue's fairness index names the
// key with its backlog, as the Python client's fair_key does (the fetch then serves keys in
// turn); a job without one keeps the queue's own order.
func TestFairKeyJoinsItsKeysTurn(t *testing.T) {
	c := startRedis(t)
	wide := strings.Repeat("é", 200) // 200 characters, 400 bytes: a key like any other
	if _, err := c.Enqueue("reports", Job{Task: "tasks.render", FairKey: wide}); err != nil {
		t.Fatal(err)
	}
	ids, err := c.Enqueue("reports", Job{Task: "tasks.render", FairKey: "acme"},
		Job{Task: "tasks.render", FairKey: "acme"}, Job{Task: "tasks.render", FairKey: "globex"},
		Job{Task: "tasks.render"})
	if err != nil {
		t.Fatal(err)
	}
	b := c.base("reports")
	keys, err := c.cn.do(0, "ZRANGE", b+"fair", "0", "-1")
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, k := range keys.([]any) {
		got = append(got, k.(string))
	}
	if strings.Join(got, ",") != "acme,globex,"+wide {
		t.Fatalf("keys with ready jobs: %v", got)
	}
	n, err := c.cn.do(0, "ZCARD", b+"fair:q:acme")
	if err != nil || n.(int64) != 2 {
		t.Fatalf("acme's ready jobs: %v %v", n, err)
	}
	fk, err := c.cn.do(0, "HGET", b+"job:"+ids[0], "fk")
	if err != nil || fk != "acme" {
		t.Fatalf("the job's fair key: %v %v", fk, err)
	}
	fk, err = c.cn.do(0, "HGET", b+"job:"+ids[3], "fk")
	if err != nil || fk != nil {
		t.Fatalf("a job without a key has one: %v %v", fk, err)
	}
}

// A fair key enqueue.lua would refuse is refused before anything is sent, naming the field.
func TestFairKeyRefusedNamesTheField(t *testing.T) {
	c := &Client{Prefix: "kubeq"}
	for _, key := range []string{strings.Repeat("é", 201), "tab\there"} {
		_, err := c.Enqueue("reports", Job{Task: "tasks.render"}, Job{Task: "t", FairKey: key})
		if err == nil || !strings.HasPrefix(err.Error(), "jobs[1].fair_key: ") {
			t.Fatalf("key %q: got %v", key, err)
		}
	}
}
