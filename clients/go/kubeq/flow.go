package kubeq

import "net/http"

// FlowJob is a Job with the debounce or singleton options of docs/patterns.md, sent through
// the gateway (EnqueueFlow): a call of a held key joins its key's job, and its Ref names
// that job. The direct Redis Client does not take them.
type FlowJob struct {
	Job
	// Debounce: seconds of quiet before the job of DebounceKey runs (its newest arguments).
	Debounce    float64 `json:"debounce,omitempty"`
	DebounceMax float64 `json:"debounce_max,omitempty"`
	DebounceKey string  `json:"debounce_key,omitempty"`
	// Singleton: skip, replace, keep_latest or cancel_running, per SingletonKey.
	Singleton    string `json:"singleton,omitempty"`
	SingletonKey string `json:"singleton_key,omitempty"`
}

// EnqueueFlow posts debounced or singleton jobs and returns the job each call went to.
func (g *Gateway) EnqueueFlow(jobs ...FlowJob) ([]Ref, error) {
	var reply struct {
		Jobs []Ref `json:"jobs"`
	}
	err := g.do(http.MethodPost, "", nil, map[string]any{"jobs": jobs}, &reply)
	return reply.Jobs, err
}
