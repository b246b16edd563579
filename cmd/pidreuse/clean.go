package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/internal/flock"
)

// ownPrefix marks everything a run creates (see newRunID and the e2e
// suites): `clean` touches nothing else, so other tools' temp dirs
// (ginkgo*, go-build*) are safe however old they are.
const ownPrefix = "pidreuse-"

// keepNames are ours by name but are results, not leftovers: the e2e
// suites' default report dir holds the artifacts of failed specs that a
// developer still has to read.
var keepNames = map[string]bool{"pidreuse-e2e-report": true}

// stagingGrace is how old a dir being created (flock.StagingPrefix) must
// be before clean takes it for a killed creator's: creation takes
// microseconds between its mkdir and its lock.
const stagingGrace = time.Minute

// libvirtCleanTimeout bounds the domain phase, so a hung libvirtd cannot
// stop clean from reaching the dirs.
const libvirtCleanTimeout = 2 * time.Minute

// leftover is one thing a run may have left behind, with the last time it
// showed any activity. A zero LastActive means the age is unknown.
type leftover struct {
	Name       string
	LastActive time.Time
	// Holder is the live process whose lock covers it (a run, a VM node,
	// a build), nil when none does.
	Holder *holder
}

// holder is a live process holding a lock clean found on its way.
type holder struct {
	PID int    // 0 when the lock file did not say
	Dir string // the locked dir
}

func (h *holder) String() string {
	who := "a live process"
	if h.PID > 0 {
		who = fmt.Sprintf("pid %d", h.PID)
	}
	return fmt.Sprintf("%s holds the lock of %s", who, h.Dir)
}

// filter says which names clean looks at: ours by prefix, and, with
// --run, only that run's.
type filter struct{ runID string }

func (f filter) ours(name string) bool {
	if keepNames[name] {
		return false
	}
	if f.runID != "" {
		run := ownPrefix + f.runID
		return name == run || strings.HasPrefix(name, run+"-")
	}
	// A dir being created (internal/flock) is ours too; it has no run
	// ID in its name yet.
	return strings.HasPrefix(name, ownPrefix) || strings.HasPrefix(name, flock.StagingPrefix)
}

// selectStale returns the names clean may remove: ours (see filter), not
// held by a live process, and idle for at least olderThan at now. With
// olderThan 0 everything of ours that no live process holds goes; with an
// age limit, a thing whose age is unknown stays, because it may belong to
// a run that is still going.
func selectStale(items []leftover, f filter, now time.Time, olderThan time.Duration) []string {
	var out []string
	for _, it := range items {
		if !f.ours(it.Name) || it.Holder != nil {
			continue
		}
		if olderThan > 0 && (it.LastActive.IsZero() || now.Sub(it.LastActive) < olderThan) {
			continue
		}
		out = append(out, it.Name)
	}
	return out
}

// reportHeld prints one line per thing of ours that a live process holds,
// and returns how many there were.
func reportHeld(items []leftover, f filter, kind, prefix string) int {
	n := 0
	for _, it := range items {
		if f.ours(it.Name) && it.Holder != nil {
			fmt.Printf("skipped %s %s%s: in use, %s\n", kind, prefix, it.Name, it.Holder)
			n++
		}
	}
	return n
}

// dirHolder is the live holder of dir's lock, or nil.
func dirHolder(dir string) *holder {
	held, pid, err := flock.DirHeld(dir)
	if err != nil {
		// Cannot tell: say it is held. Keeping is the safe mistake.
		return &holder{Dir: dir}
	}
	if !held {
		return nil
	}
	return &holder{PID: pid, Dir: dir}
}

// cmdClean removes what crashed runs left behind: libvirt domains and the
// work dirs (with their overlay disks) under $TMPDIR. Sandbox nodes die with
// their harness (their PID 1 has a parent-death signal), so only their dirs
// can be left.
func cmdClean(ctx context.Context, args []string) (int, error) {
	fset := newFlagSet("clean")
	olderThan := fset.Duration("older-than", 0, "remove only what has been idle this long, e.g. 2h (0: everything named "+ownPrefix+"*); a running run's files are younger")
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
	verb := "removed"
	if *dryRun {
		verb = "would remove"
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
	f := filter{runID: *runID}
	tmp := os.TempDir()
	now := time.Now()
	var errs []error

	// Domains first: a running QEMU holds its overlay disk open.
	domains, heldDomains, err := cleanDomains(ctx, *uri, *socket, uriGiven, tmp, f, now, *olderThan, *dryRun, verb)
	if err != nil {
		errs = append(errs, err)
	}
	dirs, files, heldDirs, err := cleanTemp(tmp, f, now, *olderThan, *dryRun, verb)
	if err != nil {
		errs = append(errs, err)
	}

	if *pruneImages > 0 {
		if cache, err := images.CacheRoot(); err != nil {
			errs = append(errs, err)
		} else {
			removed, err := images.Prune(cache, *pruneImages, now, *dryRun)
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
	scope := ownPrefix + "*"
	if f.runID != "" {
		scope = ownPrefix + f.runID + "*"
	}
	fmt.Printf("clean: %s %d domains, %d dirs, %d files (%s, named %s under libvirt and %s); skipped %d domains and %d dirs in use by live processes\n",
		verb, domains, dirs, files, age, scope, tmp, heldDomains, heldDirs)
	if err := errors.Join(errs...); err != nil {
		return exitNoVerdict, err
	}
	return exitGood, nil
}

// cleanDomains destroys and undefines our stale libvirt domains, leaving
// those of live runs alone. This machine's libvirtd not running has no
// domains to reap: that is said, not failed, so clean still works on a
// machine that only ran the sandbox tier. A host named on purpose
// (uriGiven) that cannot be reached is an error: its domains may be there.
func cleanDomains(ctx context.Context, uri, socket string, uriGiven bool, tmp string, f filter, now time.Time, olderThan time.Duration, dryRun bool, verb string) (removed, held int, _ error) {
	ctx, cancel := context.WithTimeout(ctx, libvirtCleanTimeout)
	defer cancel()
	lv, err := libvirt.ConnectURI(ctx, uri, socket)
	if err != nil {
		if uriGiven {
			return 0, 0, fmt.Errorf("clean: libvirt host %s: %w", uri, err)
		}
		fmt.Fprintf(os.Stderr, "pidreuse: clean: skipping libvirt domains: %v\n", err)
		return 0, 0, nil
	}
	defer lv.Close()
	names, err := lv.ListDomains(ctx, ownPrefix)
	if err != nil {
		return 0, 0, fmt.Errorf("clean: %w (is libvirtd healthy? `virsh -c qemu:///system list --all`)", err)
	}
	var items []leftover
	for _, n := range names {
		if !f.ours(n) {
			continue
		}
		dirs := domainDirs(ctx, lv, n, tmp)
		it := leftover{Name: n, LastActive: domainLastActive(n, dirs)}
		for _, d := range dirs {
			if it.Holder = dirHolder(d); it.Holder != nil {
				break
			}
		}
		items = append(items, it)
	}
	held = reportHeld(items, f, "domain", "")
	var errs []error
	// The SSH port leases killed runs left (live ones are skipped); they
	// carry no run ID, and a dead lease is nobody's, whatever --run says.
	if !dryRun {
		if n, err := libvirt.RemoveStalePortLocks(); err != nil {
			errs = append(errs, fmt.Errorf("clean: %w", err))
		} else if n > 0 {
			fmt.Printf("%s %d SSH port leases of dead runs under %s\n", verb, n, libvirt.PortLockDir)
		}
	}
	for _, n := range selectStale(items, f, now, olderThan) {
		if !dryRun {
			if err := lv.Destroy(ctx, n); err != nil {
				errs = append(errs, fmt.Errorf("clean: %w (try `virsh -c qemu:///system destroy %s`)", err, n))
				continue
			}
			if err := lv.Undefine(ctx, n); err != nil {
				errs = append(errs, fmt.Errorf("clean: %w (try `virsh -c qemu:///system undefine --nvram %s`)", err, n))
				continue
			}
		}
		fmt.Printf("%s domain %s\n", verb, n)
		removed++
	}
	if lv.Target().Remote() {
		errs = append(errs, cleanVolumes(ctx, lv, tmp, f, dryRun, verb))
	}
	return removed, held, errors.Join(errs...)
}

// cleanVolumes removes a remote host's per-node volumes (overlay, console
// log, layer: named after their domain) whose domain is gone, i.e. whose
// run ended without its Close or was just cleaned, unless a live run holds
// the dir the domain's name points at (its volumes are made just before
// its domain is defined). The image volumes
// (pidreuse-base-*) are a cache shared by every run and stay.
func cleanVolumes(ctx context.Context, lv *libvirt.Client, tmp string, f filter, dryRun bool, verb string) error {
	if _, err := lv.OpenPool(ctx); errors.Is(err, libvirt.ErrNoPool) {
		return nil // clean creates nothing: no pool, no volumes of ours
	} else if err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	vols, err := lv.ListVolumes(ctx, ownPrefix)
	if err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	domains, err := lv.ListDomains(ctx, ownPrefix)
	if err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	var errs []error
	for _, v := range vols {
		domain, _, _ := strings.Cut(v, ".")
		if strings.HasPrefix(v, libvirt.VolumePrefix+"base-") || slices.Contains(domains, domain) || !f.ours(domain) {
			continue
		}
		if slices.ContainsFunc(domainDirs(ctx, lv, domain, tmp), func(d string) bool { return dirHolder(d) != nil }) {
			fmt.Printf("left volume %s of %s: a live run holds its dir\n", v, lv.Target())
			continue
		}
		if !dryRun {
			if err := lv.DeleteVolume(ctx, v); err != nil {
				errs = append(errs, fmt.Errorf("clean: %w", err))
				continue
			}
		}
		fmt.Printf("%s volume %s of %s\n", verb, v, lv.Target())
	}
	return errors.Join(errs...)
}

// domainDirs are the dirs whose locks say a domain is in use: the owner
// dir its metadata names (vm.Node locks it for the node's life), and, for
// domains made before there was metadata, the dirs its name points at:
// $TMPDIR/NAME (e2e suites) and $TMPDIR/pidreuse-RUNID for a domain
// pidreuse-RUNID-NODE (pidreuse run).
func domainDirs(ctx context.Context, lv *libvirt.Client, name, tmp string) []string {
	var dirs []string
	if d, err := lv.OwnerDir(ctx, name); err == nil && d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, filepath.Join(tmp, name))
	if i := strings.LastIndex(name, "-"); i > len(ownPrefix) {
		dirs = append(dirs, filepath.Join(tmp, name[:i]))
	}
	return dirs
}

// domainLastActive is when a domain last showed activity, from files
// libvirt and our runs write: its config (written at define), its status
// file and QEMU log (written at every start and stop), and its dirs
// (domainDirs), whose overlay disk and console log a live VM keeps
// writing.
func domainLastActive(name string, dirs []string) time.Time {
	var last time.Time
	for _, p := range []string{
		"/etc/libvirt/qemu/" + name + ".xml",
		"/run/libvirt/qemu/" + name + ".xml",
		"/var/log/libvirt/qemu/" + name + ".log",
	} {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(last) {
			last = fi.ModTime()
		}
	}
	for _, d := range dirs {
		if t := treeLastActive(d); t.After(last) {
			last = t
		}
	}
	return last
}

// treeLastActive is the newest mtime in a tree: a dir's own mtime changes
// only when entries come and go, while a live run keeps writing files deep
// inside it. Zero when path does not exist.
func treeLastActive(path string) time.Time {
	var last time.Time
	// Unreadable parts are skipped: the age is then a lower bound, which
	// only errs towards keeping.
	_ = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().After(last) {
			last = fi.ModTime()
		}
		return nil
	})
	return last
}

// cleanTemp removes our stale work dirs and files (overlay disks live in
// the VM work dirs) directly under tmp, leaving those a live process holds
// (a run, a VM node, a build) alone.
func cleanTemp(tmp string, f filter, now time.Time, olderThan time.Duration, dryRun bool, verb string) (dirs, files, held int, err error) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("clean: read %s: %w (is TMPDIR set to a dir that exists?)", tmp, err)
	}
	var items []leftover
	isDir := map[string]bool{}
	for _, e := range entries {
		if !f.ours(e.Name()) {
			continue
		}
		p := filepath.Join(tmp, e.Name())
		// WalkDir does not follow a symlink at its root: a link's age is
		// its own, and RemoveAll removes the link, not its target.
		it := leftover{Name: e.Name(), LastActive: treeLastActive(p)}
		if e.IsDir() {
			it.Holder = dirHolder(p)
		}
		// A dir being created is locked a moment after its mkdir: a young
		// one may be in that moment. Only a killed creator leaves one.
		if strings.HasPrefix(e.Name(), flock.StagingPrefix) && now.Sub(it.LastActive) < stagingGrace {
			continue
		}
		items = append(items, it)
		isDir[e.Name()] = e.IsDir()
	}
	held = reportHeld(items, f, "dir", tmp+string(filepath.Separator))
	stale := selectStale(items, f, now, olderThan)
	var errs []error
	for _, n := range stale {
		p := filepath.Join(tmp, n)
		// RemoveAll would descend into a mount and delete what it shows;
		// a crashed run should never leave one here, but if it did, the
		// files behind it are not ours.
		m, mErr := mountUnder(p)
		if mErr != nil {
			errs = append(errs, fmt.Errorf("clean: kept %s: cannot tell whether anything is mounted under it: %w", p, mErr))
			continue
		}
		if m != "" {
			errs = append(errs, fmt.Errorf("clean: kept %s: %s is mounted under it: unmount it (umount -R %s) and run clean again", p, m, m))
			continue
		}
		if !dryRun {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, fmt.Errorf("clean: remove %s: %w (remove it by hand; is a process still using it?)", p, err))
				continue
			}
		}
		if isDir[n] {
			fmt.Printf("%s dir %s\n", verb, p)
			dirs++
		} else {
			fmt.Printf("%s file %s\n", verb, p)
			files++
		}
	}
	return dirs, files, held, errors.Join(errs...)
}

// mountUnder returns a mount point at or below dir (absolute and clean),
// or "".
func mountUnder(dir string) (string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil || len(mounts) == 0 {
		return "", err
	}
	return mounts[0].Mountpoint, nil
}
