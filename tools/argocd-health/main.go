// Command argocd-health evaluates an Argo CD resource health script (health.lua) the way Argo
// CD's util/lua package does, on gopher-lua: the same Lua state (standard libraries only when
// the script may use them, else just package, base, table and a safe os; a json module; a
// one-second deadline), the object as the global `obj`, and the returned table read as
// {status, message} through gopher-json, an unknown status turning into Unknown.
//
//	argocd-health test DIR       every DIR/**/health.lua against its health_test.yaml, as
//	                             Argo CD's TestLuaHealthScript does; prints "N passed, M failed"
//	argocd-health eval SCRIPT    each object on stdin (JSON or YAML stream): one JSON line
//
// Both run each script twice: with the standard libraries (a built-in resource_customizations
// script) and without (an argocd-cm override without useOpenLibs); the verdicts must agree.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

// health is Argo CD's HealthStatus as a script returns it.
type health struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// The codes Argo CD accepts; anything else becomes Unknown.
var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health test DIR | eval SCRIPT")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "test":
		err = testAll(os.Args[2])
	case "eval":
		err = evalStdin(os.Args[2])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
}

// evaluate runs script on obj in both library modes and insists they agree.
func evaluate(script string, obj map[string]any) (health, error) {
	withLibs, err := run(script, obj, true)
	if err != nil {
		return health{}, fmt.Errorf("with the standard libraries: %w", err)
	}
	restricted, err := run(script, obj, false)
	if err != nil {
		return health{}, fmt.Errorf("without the standard libraries (argocd-cm default): %w", err)
	}
	if withLibs != restricted {
		return health{}, fmt.Errorf("the verdict depends on the libraries: %+v with, %+v without", withLibs, restricted)
	}
	return withLibs, nil
}

func run(script string, obj map[string]any, openLibs bool) (health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return health{}, err
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)
	luajson.Preload(l)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return health{}, err
	}
	returned := l.Get(-1)
	if returned.Type() != lua.LTTable {
		return health{}, fmt.Errorf("expect table output from Lua script, not %s", returned.Type())
	}
	encoded, err := luajson.Encode(returned)
	if err != nil {
		return health{}, err
	}
	var result health
	if err := json.Unmarshal(encoded, &result); err != nil {
		// An empty table encodes as an array: Argo CD takes it as an empty status.
		var typeError *json.UnmarshalTypeError
		if errors.As(err, &typeError) && typeError.Value == "array" {
			return health{}, nil
		}
		return health{}, err
	}
	if !validStatus[result.Status] {
		return health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return result, nil
}

// toLua converts a decoded object as Argo CD's decodeValue does (numbers of every Go kind
// become Lua numbers).
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case json.Number:
		return lua.LString(v)
	case string:
		return lua.LString(v)
	case []any:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

// Argo CD's safe os offers time and date only; our script needs neither, so only time is here.
var safeOs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int { l.Push(lua.LNumber(time.Now().Unix())); return 1 },
}

func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.OsLibName, safeOs))
	return 1
}

func safeOsLoader(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOs))
	return 1
}

// testAll walks dir as Argo CD's test walks resource_customizations/.
func testAll(dir string) error {
	type testFile struct {
		Tests []struct {
			InputPath    string `json:"inputPath"`
			HealthStatus health `json:"healthStatus"`
		} `json:"tests"`
	}
	passed, failed := 0, 0
	var scripts []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "health.lua" {
			scripts = append(scripts, path)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(scripts)
	if len(scripts) == 0 {
		return fmt.Errorf("no health.lua under %s", dir)
	}
	for _, path := range scripts {
		script, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		base := filepath.Dir(path)
		raw, err := os.ReadFile(filepath.Join(base, "health_test.yaml"))
		if err != nil {
			return err
		}
		var tests testFile
		if err := yaml.Unmarshal(raw, &tests); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(base, "health_test.yaml"), err)
		}
		for _, test := range tests.Tests {
			name := filepath.Join(base, test.InputPath)
			got, err := evalFile(string(script), name)
			switch {
			case err != nil:
				failed++
				fmt.Printf("FAIL %s: %v\n", name, err)
			case got != test.HealthStatus:
				failed++
				fmt.Printf("FAIL %s: got %+v, want %+v\n", name, got, test.HealthStatus)
			default:
				passed++
				fmt.Printf("ok   %s: %s: %s\n", name, got.Status, got.Message)
			}
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		return fmt.Errorf("%d of %d health tests failed", failed, passed+failed)
	}
	return nil
}

func evalFile(script, path string) (health, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return health{}, err
	}
	// As Argo CD's test reads its input: sigs.k8s.io/yaml into a map.
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return health{}, err
	}
	return evaluate(script, obj)
}

func evalStdin(scriptPath string) error {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(os.Stdin), 4096)
	encoder := json.NewEncoder(os.Stdout)
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		// As Argo CD's controller holds a live object: unstructured, integers as int64.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			return err
		}
		result, err := evaluate(string(script), obj.Object)
		if err != nil {
			return err
		}
		if err := encoder.Encode(result); err != nil {
			return err
		}
	}
}
