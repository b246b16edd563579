// The sandbox tier: every scenario with every CNI plugin version, each on a
// fresh namespace node, in seconds and without a VM.
package sandbox_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pidreuse/pidreuse/e2e/e2eutil"
	"github.com/pidreuse/pidreuse/images/cniplugins"
	"github.com/pidreuse/pidreuse/images/versions"
)

func TestSandbox(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "pidreuse sandbox tier")
}

var _ = e2eutil.RegisterFailureDigest()

// suiteEnv is built once by the first process and shared with the others.
type suiteEnv struct {
	AgentPath  string            `json:"agentPath"`
	PluginDirs map[string]string `json:"pluginDirs"`
}

var (
	env               suiteEnv
	realNet           e2eutil.HostNet
	versionsUnderTest = append(append([]string{}, versions.CNIPlugins...), versions.DebianCNIPlugins)
)

var _ = SynchronizedBeforeSuite(func(ctx SpecContext) []byte {
	if os.Geteuid() != 0 {
		// Plain `go test ./...` as a user must pass: say why nothing ran.
		Skip("the sandbox tier needs root: it creates pid, net and mount namespaces (run make test as root)")
	}
	dir := e2eutil.LockedTempDir("pidreuse-e2e-bin-")
	e := suiteEnv{PluginDirs: map[string]string{}}
	By("building the node agent")
	var err error
	e.AgentPath, err = e2eutil.BuildAgent(ctx, dir)
	Expect(err).NotTo(HaveOccurred())
	root, err := cniplugins.CacheRoot()
	Expect(err).NotTo(HaveOccurred())
	for _, v := range versionsUnderTest {
		By("getting CNI plugins " + v)
		e.PluginDirs[v], err = cniplugins.Dir(ctx, root, v, func(s string) { GinkgoWriter.Println(s) })
		Expect(err).NotTo(HaveOccurred())
	}
	data, err := json.Marshal(e)
	Expect(err).NotTo(HaveOccurred())
	return data
}, func(data []byte) {
	Expect(json.Unmarshal(data, &env)).To(Succeed())
	var err error
	realNet, err = e2eutil.ReadHostNet()
	Expect(err).NotTo(HaveOccurred())
	Expect(realNet.LoUp).To(BeTrue(), "the real machine's lo is down before any test ran: fix the machine first")
}, NodeTimeout(15*time.Minute))

// The real machine's lo and netns must be exactly as they were after every
// single spec: the sandbox tier never touches them.
var _ = AfterEach(func() {
	now, err := e2eutil.ReadHostNet()
	Expect(err).NotTo(HaveOccurred())
	Expect(now.NetnsInode).To(Equal(realNet.NetnsInode), "the test process changed network namespace")
	Expect(now.LoUp).To(BeTrue(), "the REAL machine's lo went down")
	Expect(now.LoFlags).To(Equal(realNet.LoFlags), "the real machine's lo flags changed")
})
