package kubeq

import (
	"strings"
	"testing"
)

// A job enqueued with Tags carries them and joins each tag's search index and its task's,
// as a Python call's tags=[...] does (kubeq jobs --tag finds it); a bad tag is refused
// naming the field, and nothing of that call is enqueued.
func TestTagsAreStoredAndIndexed(t *testing.T) {
	c := startRedis(t)
	ids, err := c.Enqueue("shop", Job{Task: "tasks.pay", Tags: []string{"vip", "customer:42"}},
		Job{Task: "tasks.pay"})
	if err != nil {
		t.Fatal(err)
	}
	b := "kubeq:{shop}:"
	tags, err := c.cn.do(0, "HGET", b+"job:"+ids[0], "tags")
	if err != nil || tags != `["vip","customer:42"]` {
		t.Fatalf("the job's tags: %v %v", tags, err)
	}
	for key, want := range map[string]int64{"ix:tag:vip": 1, "ix:tag:customer:42": 1,
		"ix:task:tasks.pay": 2} {
		n, err := c.cn.do(0, "LLEN", b+key)
		if err != nil || n != want {
			t.Fatalf("%s holds %v, want %d (%v)", key, n, want, err)
		}
	}
	_, err = c.Enqueue("shop", Job{Task: "t"}, Job{Task: "t", Tags: []string{"a b"}})
	if err == nil || !strings.Contains(err.Error(), `tags: "a b" is not a tag`) {
		t.Fatalf("a bad tag: %v", err)
	}
	n, _ := c.cn.do(0, "ZCARD", b+"ready")
	if n != int64(2) {
		t.Fatalf("a refused call enqueued something: %v jobs ready", n)
	}
}
