// Command promlint lints a Prometheus text exposition (a scrape of /metrics) read from stdin
// with client_golang's promlint, the linter behind `promtool check metrics`, so kubeq's tests
// can lint a live worker's and the operator's /metrics without promtool.
//
// Prints one "metric: text" line per problem and exits 1 if there is any.
package main

import (
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func main() {
	problems, err := promlint.New(os.Stdin).Lint()
	if err != nil {
		fmt.Fprintln(os.Stderr, "promlint:", err)
		os.Exit(2)
	}
	for _, p := range problems {
		fmt.Printf("%s: %s\n", p.Metric, p.Text)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}
