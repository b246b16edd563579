package e2eutil

import (
	"context"
	"os"

	. "github.com/onsi/ginkgo/v2"

	"github.com/pidreuse/pidreuse/images/components"
	"github.com/pidreuse/pidreuse/images/crionode"
)

// RequireAllEnv, set to 1, turns a spec skipped for a missing input (a
// bug-era CRI-O source) into a failure: a gating job that provides every
// input must not pass with a part of the suite skipped.
const RequireAllEnv = "PIDREUSE_REQUIRE_ALL"

// SkipWithoutSources skips the current spec (or, from a BeforeAll, its
// ordered container) when the CRI-O source profile needs is nowhere to be
// had, before anything is built or booted; with PIDREUSE_REQUIRE_ALL=1 it
// fails instead. A source that is there but unusable always fails.
func SkipWithoutSources(ctx context.Context, profile string) {
	GinkgoHelper()
	p, err := crionode.Lookup(profile)
	if err != nil {
		Fail(err.Error())
	}
	err = p.CheckSources(ctx)
	switch {
	case err == nil:
	case components.IsNoSource(err) && os.Getenv(RequireAllEnv) != "1":
		Skip(err.Error() + " (" + RequireAllEnv + "=1 makes this a failure)")
	default:
		Fail(err.Error())
	}
}
