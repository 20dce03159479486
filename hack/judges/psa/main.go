// Command psa-check evaluates every pod (and pod template) in YAML manifests against a Pod
// Security Standards level with the API server's own code (k8s.io/pod-security-admission),
// so kubeq's tests get the verdict a namespace labelled pod-security.kubernetes.io/enforce
// would give, without a cluster.
//
// Usage: psa-check [-level restricted] [-version latest] FILE... ("-" reads stdin)
// Prints one JSON object per pod-bearing document and exits 1 if any is forbidden.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	File    string   `json:"file"`
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	Allowed bool     `json:"allowed"`
	Reasons []string `json:"reasons,omitempty"`
	Details []string `json:"details,omitempty"`
}

type header struct {
	Kind string `json:"kind"`
}

// podOf returns the pod metadata and spec a document carries (nil spec: not a pod-bearing kind).
func podOf(kind string, raw []byte) (*metav1.ObjectMeta, *corev1.PodSpec, string, error) {
	switch kind {
	case "Pod":
		var o corev1.Pod
		err := yaml.UnmarshalStrict(raw, &o)
		return &o.ObjectMeta, &o.Spec, o.Name, err
	case "Deployment":
		var o appsv1.Deployment
		err := yaml.UnmarshalStrict(raw, &o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, o.Name, err
	case "StatefulSet":
		var o appsv1.StatefulSet
		err := yaml.UnmarshalStrict(raw, &o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, o.Name, err
	case "DaemonSet":
		var o appsv1.DaemonSet
		err := yaml.UnmarshalStrict(raw, &o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, o.Name, err
	case "ReplicaSet":
		var o appsv1.ReplicaSet
		err := yaml.UnmarshalStrict(raw, &o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, o.Name, err
	case "Job":
		var o batchv1.Job
		err := yaml.UnmarshalStrict(raw, &o)
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec, o.Name, err
	case "CronJob":
		var o batchv1.CronJob
		err := yaml.UnmarshalStrict(raw, &o)
		t := &o.Spec.JobTemplate.Spec.Template
		return &t.ObjectMeta, &t.Spec, o.Name, err
	}
	return nil, nil, "", nil
}

func check(path string, in io.Reader, lv api.LevelVersion, ev policy.Evaluator, out *json.Encoder) (int, error) {
	forbidden := 0
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(in), 4096)
	for {
		var doc json.RawMessage
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return forbidden, nil
			}
			return forbidden, fmt.Errorf("%s: %w", path, err)
		}
		if len(doc) == 0 || string(doc) == "null" {
			continue
		}
		var h header
		if err := json.Unmarshal(doc, &h); err != nil {
			return forbidden, fmt.Errorf("%s: %w", path, err)
		}
		meta, spec, name, err := podOf(h.Kind, doc)
		if err != nil {
			return forbidden, fmt.Errorf("%s: %s %s: %w", path, h.Kind, name, err)
		}
		if spec == nil {
			continue
		}
		res := policy.AggregateCheckResults(ev.EvaluatePod(lv, meta, spec))
		v := verdict{File: path, Kind: h.Kind, Name: name, Allowed: res.Allowed}
		if !res.Allowed {
			forbidden++
			v.Reasons = res.ForbiddenReasons
			v.Details = res.ForbiddenDetails
		}
		if err := out.Encode(v); err != nil {
			return forbidden, err
		}
	}
}

func main() {
	level := flag.String("level", "restricted", "privileged, baseline or restricted")
	version := flag.String("version", "latest", "policy version, e.g. v1.35 or latest")
	flag.Parse()
	lvl, err := api.ParseLevel(*level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "psa-check:", err)
		os.Exit(2)
	}
	ver, err := api.ParseVersion(*version)
	if err != nil {
		fmt.Fprintln(os.Stderr, "psa-check:", err)
		os.Exit(2)
	}
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "psa-check:", err)
		os.Exit(2)
	}
	lv := api.LevelVersion{Level: lvl, Version: ver}
	out := json.NewEncoder(os.Stdout)
	paths := flag.Args()
	if len(paths) == 0 {
		paths = []string{"-"}
	}
	forbidden := 0
	for _, p := range paths {
		var in io.Reader = os.Stdin
		if p != "-" {
			f, err := os.Open(p)
			if err != nil {
				fmt.Fprintln(os.Stderr, "psa-check:", err)
				os.Exit(2)
			}
			defer f.Close()
			in = f
		}
		n, err := check(p, in, lv, ev, out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "psa-check:", err)
			os.Exit(2)
		}
		forbidden += n
	}
	if forbidden > 0 {
		os.Exit(1)
	}
}
