package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/harness/reap"
	"github.com/pidreuse/pidreuse/images"
)

// cmdClean removes what crashed runs left behind: libvirt domains and the
// work dirs (with their overlay disks) under $TMPDIR. Sandbox nodes die with
// their harness (their PID 1 has a parent-death signal), so only their dirs
// can be left. What counts as left behind is harness/reap's.
func cmdClean(ctx context.Context, args []string) (int, error) {
	fset := newFlagSet("clean")
	olderThan := fset.Duration("older-than", 0, "remove only what has been idle this long, e.g. 2h (0: everything named "+reap.Prefix+"*); a running run's files are younger")
	dryRun := fset.Bool("dry-run", false, "say what would be removed, remove nothing")
	pruneImages := fset.Duration("images-unused-for", 0, "also remove cached node images (and Debian install tarballs) no run has used for this long, e.g. 168h (0: keep them all)")
	socket := fset.String("libvirt-socket", envOr("PIDREUSE_LIBVIRT_SOCKET", libvirt.DefaultSocket), "libvirtd's socket, for a local --libvirt-uri")
	uri := fset.String("libvirt-uri", envOr("PIDREUSE_LIBVIRT_URI", libvirt.LocalURI), "the libvirt host to clean (on a remote one also the runs' volumes in its pool "+libvirt.PoolName+")")
	runID := fset.String("run", "", "remove only what the run with this ID left (its domains pidreuse-ID-* and dir pidreuse-ID)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitGood, nil
		}
		return exitUsage, usageErr{fmt.Sprintf("clean: %v", err)}
	}
	if fset.NArg() > 0 {
		return exitUsage, usageErr{fmt.Sprintf("clean: unexpected argument %q", fset.Arg(0))}
	}
	if *olderThan < 0 {
		return exitUsage, usageErr{fmt.Sprintf("clean: --older-than %s is negative: give an age such as 30m", *olderThan)}
	}
	if *pruneImages < 0 {
		return exitUsage, usageErr{fmt.Sprintf("clean: --images-unused-for %s is negative: give an age such as 168h", *pruneImages)}
	}
	// A whole run ID only: a prefix such as 1207 would match a whole
	// day's runs.
	if *runID != "" && !runIDPattern.MatchString(*runID) {
		return exitUsage, usageErr{fmt.Sprintf("clean: --run %q: give a whole run ID as pidreuse run prints it, e.g. 0102-150405-a1b2c3", *runID)}
	}
	// A URI clean cannot use is refused, not reported as a clean host.
	if _, err := libvirt.ParseURI(*uri); err != nil {
		return exitUsage, usageErr{fmt.Sprintf("clean: --libvirt-uri: %v", err)}
	}
	uriGiven := os.Getenv("PIDREUSE_LIBVIRT_URI") != ""
	fset.Visit(func(fl *flag.Flag) { uriGiven = uriGiven || fl.Name == "libvirt-uri" })
	r := &reap.Reaper{
		Out:       os.Stdout,
		Warn:      os.Stderr,
		DryRun:    *dryRun,
		Now:       time.Now(),
		OlderThan: *olderThan,
		Filter:    reap.Filter{RunID: *runID},
		Tmp:       os.TempDir(),
	}
	verb := r.Verb()
	var errs []error

	// Domains first: a running QEMU holds its overlay disk open.
	domains, heldDomains, err := r.Domains(ctx, *uri, *socket, uriGiven)
	if err != nil {
		errs = append(errs, err)
	}
	dirs, files, heldDirs, err := r.Temp()
	if err != nil {
		errs = append(errs, err)
	}

	if *pruneImages > 0 {
		if cache, err := images.CacheRoot(); err != nil {
			errs = append(errs, err)
		} else {
			removed, err := images.Prune(cache, *pruneImages, r.Now, *dryRun)
			for _, dir := range removed {
				fmt.Printf("%s image %s\n", verb, dir)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}

	age := "any age"
	if *olderThan > 0 {
		age = "idle for " + olderThan.String() + " or more"
	}
	scope := reap.Prefix + "*"
	if *runID != "" {
		scope = reap.Prefix + *runID + "*"
	}
	fmt.Printf("clean: %s %d domains, %d dirs, %d files (%s, named %s under libvirt and %s); skipped %d domains and %d dirs in use by live processes\n",
		verb, domains, dirs, files, age, scope, r.Tmp, heldDomains, heldDirs)
	if err := errors.Join(errs...); err != nil {
		return exitNoVerdict, err
	}
	return exitGood, nil
}
