package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/pidreuse/pidreuse/images/cniplugins"
	"github.com/pidreuse/pidreuse/images/versions"
)

// cmdPlugins builds (or finds cached) CNI plugin versions and prints
// their dirs: `make deps` runs it so the first test run is fast.
func cmdPlugins(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("plugins", flag.ContinueOnError)
	version := fs.String("plugin-version", "all", "a tag, debian, or all")
	if err := fs.Parse(args); err != nil {
		return exitUsage, usageErr{err.Error()}
	}
	wanted := []string{*version}
	if *version == "all" {
		wanted = versions.CNIPlugins
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
