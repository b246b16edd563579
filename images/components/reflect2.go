package components

// reflect2Module v1.0.1 crashes at run time under Go >= 1.18 (jsoniter's
// map marshalling dereferences nil); versions.Reflect2Fixed is the fix.
const (
	reflect2Module = "github.com/modern-go/reflect2"
	reflect2Broken = "v1.0.1"
)
