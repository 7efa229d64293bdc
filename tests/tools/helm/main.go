// helmrender renders a Helm chart as `helm template` does and lints it as `helm lint` does,
// with Helm's own library (helm.sh/helm/v4): no helm binary can be installed on the machines
// the tests run on.
//
//	helmrender [--lint] [--name NAME] [--namespace NS] [-f values.yaml]... [--set k=v]... CHART
//
// The rendered manifests are written to stdout as one YAML stream, in file name order.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var valueFiles, sets list
	name := flag.String("name", "sluice", "the release name")
	namespace := flag.String("namespace", "default", "the release namespace")
	doLint := flag.Bool("lint", false, "lint the chart as helm lint does, then render")
	flag.Var(&valueFiles, "f", "a values file (repeatable)")
	flag.Var(&sets, "set", "a value as key=value (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 {
		fail("usage: helmrender [--lint] [-f values.yaml]... [--set k=v]... CHART")
	}
	dir := flag.Arg(0)
	values := map[string]any{}
	for _, f := range valueFiles {
		data, err := os.Open(f)
		check(err)
		read, err := loader.LoadValues(data)
		check(err)
		values = loader.MergeMaps(values, read)
	}
	for _, s := range sets {
		check(strvals.ParseInto(s, values))
	}
	if *doLint {
		linted := lint.RunAll(dir, values, *namespace)
		failed := false
		for _, m := range linted.Messages {
			fmt.Fprintln(os.Stderr, m.Error())
			failed = failed || m.Severity >= support.WarningSev
		}
		if failed {
			os.Exit(1)
		}
	}
	chart, err := loader.Load(dir)
	check(err)
	options := common.ReleaseOptions{Name: *name, Namespace: *namespace, Revision: 1, IsInstall: true}
	renderValues, err := util.ToRenderValues(chart, values, options, common.DefaultCapabilities)
	check(err)
	rendered, err := engine.Render(chart, renderValues)
	check(err)
	names := make([]string, 0, len(rendered))
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		text := strings.TrimSpace(rendered[n])
		if text == "" || strings.HasSuffix(n, "NOTES.txt") || strings.HasPrefix(n, "_") {
			continue
		}
		fmt.Printf("---\n# Source: %s\n%s\n", n, text)
	}
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "helmrender:", message)
	os.Exit(1)
}
