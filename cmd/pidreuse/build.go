package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/pidreuse/pidreuse/images/components"
)

const buildUsage = "usage: pidreuse build crio --src DIR --out DIR"

// cmdBuild builds a component from a source tree the way the node image
// builds it. Only CRI-O so far: `pidreuse build crio --src . --out DIR` in
// a bisect step gives the crio and pinns that `--crio`/`--pinns` take.
// Exit 0 when it built, 125 when the tree does not build (skip, in a
// bisect), 2 for bad flags.
func cmdBuild(ctx context.Context, args []string) (int, error) {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		printCommandHelp(os.Stdout, "build", nil)
		return exitGood, nil
	}
	if len(args) == 0 || args[0] != "crio" {
		return exitUsage, usageErr{buildUsage}
	}
	fs := newFlagSet("build crio")
	src := fs.String("src", "", "a CRI-O source tree `DIR` (a git checkout or an unpacked release), v1.16 or later; it is not modified")
	out := fs.String("out", "", "`DIR` to write crio (and pinns, when the tree has pinns/) into; made if missing")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitGood, nil
		}
		return exitUsage, usageErr{err.Error()}
	}
	if fs.NArg() > 0 {
		return exitUsage, usageErr{fmt.Sprintf("unexpected arguments %q: %s", fs.Args(), buildUsage)}
	}
	if err := isDir("--src", *src); err != nil {
		return exitUsage, err
	}
	// A missing --out is made (a bisect step names a fresh dir): only its
	// parent must be there, and a file in the way is an error.
	if *out != "" {
		if err := os.Mkdir(*out, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return exitUsage, usageErr{fmt.Sprintf("--out: %v", err)}
		}
	}
	if err := isDir("--out", *out); err != nil {
		return exitUsage, err
	}
	res, err := components.BuildCRIOTree(ctx, *src, *out, progressLine)
	if err != nil {
		return exitNoVerdict, fmt.Errorf("build crio from %s: %w", *src, err)
	}
	fmt.Println(res.CRIO)
	if res.Pinns != "" {
		fmt.Println(res.Pinns)
	}
	return exitGood, nil
}

// isDir is a usage error unless path names an existing dir.
func isDir(flagName, path string) error {
	if path == "" {
		return usageErr{fmt.Sprintf("%s is required: %s", flagName, buildUsage)}
	}
	st, err := os.Stat(path)
	if err != nil {
		return usageErr{fmt.Sprintf("%s: %v", flagName, err)}
	}
	if !st.IsDir() {
		return usageErr{fmt.Sprintf("%s %s is not a directory", flagName, path)}
	}
	return nil
}
