package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/pidreuse/pidreuse/images/cniplugins"
	"github.com/pidreuse/pidreuse/images/versions"
)

// cmdPlugins builds (or finds cached) CNI plugin versions and prints
// their dirs: `make deps` runs it so the first test run is fast.
func cmdPlugins(ctx context.Context, args []string) (int, error) {
	fs := newFlagSet("plugins")
	version := fs.String("plugin-version", "all", "the pinned tags to build ("+strings.Join(versions.CNIPlugins, ", ")+"), comma-separated, or all")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitGood, nil
		}
		return exitUsage, usageErr{"plugins: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return exitUsage, usageErr{fmt.Sprintf("plugins: unexpected argument %q", fs.Arg(0))}
	}
	wanted := versions.CNIPlugins
	if *version != "all" {
		var err error
		if wanted, err = cniplugins.ParseVersions(*version); err != nil {
			return exitUsage, usageErr{"plugins: --plugin-version: " + err.Error()}
		}
	}
	root, err := cniplugins.CacheRoot()
	if err != nil {
		return exitNoVerdict, err
	}
	for _, v := range wanted {
		dir, err := cniplugins.Dir(ctx, root, v, func(s string) { fmt.Println("pidreuse:", s) })
		if err != nil {
			return exitNoVerdict, err
		}
		fmt.Printf("%s\t%s\n", v, dir)
	}
	return exitGood, nil
}
