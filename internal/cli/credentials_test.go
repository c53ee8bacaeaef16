package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// Tokens of the credentials files of these tests: recognisable, so that a
// leak is found.
const (
	credTokenAlice = "SECRETALICETOKEN0123456789abcdefghijklmn"
	credTokenBob   = "SECRETBOBTOKEN000123456789abcdefghijklmn"
	credKeyCarol   = "SECRETCAROLKEY0123456789abcdef012345678"
	credTokenDave  = "SECRETDAVETOKEN00123456789abcdefghijklmn"
	credTokenEnv   = "SECRETENVTOKEN000123456789abcdefghijklmn"
)

// verifyCounter is the simulator (any credential accepted) behind a
// handler that counts every credential check by credential and path, and
// plays two kinds of token the simulator has one of: bob's is an
// account-owned token of bobAccount, dave's is revoked.
type verifyCounter struct {
	url string
	mu  sync.Mutex
	n   map[string]int // "alice GET /user/tokens/verify" -> calls
}

const bobAccount = "b0b0000000000000000000000000000b"

func newVerifyCounter(t *testing.T) *verifyCounter {
	t.Helper()
	sim, err := simulator.New(simulator.Config{Write: writeFunc(&destination.File{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	vc := &verifyCounter{n: map[string]int{}}
	who := map[string]string{"Bearer " + credTokenAlice: "alice", "Bearer " + credTokenBob: "bob", "Bearer " + credTokenDave: "dave",
		"Bearer " + credTokenEnv: "default"}
	fail := func(w http.ResponseWriter, status, code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"success":false,"errors":[{"code":%d,"message":%q}],"messages":[],"result":null}`, code, msg)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := who[r.Header.Get("Authorization")]
		if r.Header.Get("X-Auth-Key") == credKeyCarol {
			name = "carol"
		}
		path := strings.TrimPrefix(r.URL.Path, "/client/v4")
		vc.mu.Lock()
		vc.n[name+" "+r.Method+" "+path]++
		vc.mu.Unlock()
		switch {
		case name == "dave":
			fail(w, http.StatusUnauthorized, 1000, "Invalid API Token")
		case name == "bob" && path == "/user/tokens/verify":
			fail(w, http.StatusUnauthorized, 1000, "Invalid API Token")
		case name == "bob" && path == "/accounts/"+bobAccount+"/tokens/verify":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"success":true,"errors":[],"messages":[],"result":{"id":"0123456789abcdef0123456789abcdef","status":"active"}}`)
		default:
			sim.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	vc.url = srv.URL + "/client/v4"
	return vc
}

func (vc *verifyCounter) calls() map[string]int {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	out := map[string]int{}
	for k, v := range vc.n {
		out[k] = v
	}
	return out
}

// credFile writes a credentials file of alice, bob, carol and dave.
func credFile(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "credentials.yaml")
	content := "alice:\n  token: " + credTokenAlice + "\n" +
		"bob: " + credTokenBob + "\n" +
		"carol:\n  email: carol@example.com\n  key: " + credKeyCarol + "\n  api_rate: 600/5m\n" +
		"dave: {token: " + credTokenDave + ", budget_key: dave-user}\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPreflightOncePerCredential: preflight checks each credential the
// batch uses once, whatever its number of rows, against the accounts of
// its own rows, reports each by name, and leaves alone those the batch
// does not use.
func TestPreflightOncePerCredential(t *testing.T) {
	t.Parallel()
	vc := newVerifyCounter(t)
	dir := t.TempDir()
	creds := credFile(t, dir)
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf,credential\n")
	for i := range 4 {
		fmt.Fprintf(&b, "%032x,,https://logs.example.com/a/%d,alice\n", 0xa0+i, i)
		fmt.Fprintf(&b, ",%032x,https://logs.example.com/z/%d,bob\n", 0xb0+i, i) // accounts bob does not own
		fmt.Fprintf(&b, "%032x,,https://logs.example.com/c/%d,carol\n", 0xc0+i, i)
		fmt.Fprintf(&b, "%032x,,https://logs.example.com/d/%d,\n", 0xd0+i, i)
	}
	fmt.Fprintf(&b, ",%s,https://logs.example.com/b,bob\n", bobAccount)
	in := filepath.Join(dir, "batch.csv")
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": credTokenEnv}
	code, out, stderr := runEnv(t, env, "", "preflight", "--cloudflare-api-url", vc.url, "--credentials", creds, in)
	if code != 0 {
		t.Fatalf("preflight = %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	for _, want := range []string{
		`preflight: Cloudflare credential "alice" works (user API token)`,
		`preflight: Cloudflare credential "bob" works (account-owned API token of account ` + bobAccount + `)`,
		`preflight: Cloudflare credential "carol" works (email and global API key)`,
		`preflight: Cloudflare credential default (environment) works (user API token)`,
		`preflight: 4 Cloudflare credentials checked; 0 buckets readable`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	got := vc.calls()
	want := map[string]int{
		"alice GET /user/tokens/verify":                      1,
		"bob GET /user/tokens/verify":                        1,
		"carol GET /user":                                    1,
		"default GET /user/tokens/verify":                    1,
		"bob GET /accounts/" + bobAccount + "/tokens/verify": 1,
	}
	for i := range 4 { // bob's other accounts, tried before its own, once each
		want[fmt.Sprintf("bob GET /accounts/%032x/tokens/verify", 0xb0+i)] = 1
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls:\n %v\nwant:\n %v", got, want)
	}
	for _, s := range []string{credTokenAlice, credTokenBob, credKeyCarol, credTokenDave, credTokenEnv} {
		if strings.Contains(out+stderr, s) {
			t.Errorf("secret %q in the output", s)
		}
	}

	// A revoked credential is a problem named by its credential and rows;
	// one file naming a single credential reads as it always did.
	bad := filepath.Join(dir, "dave.csv")
	if err := os.WriteFile(bad, []byte("zone_id,account_id,destination_conf,credential\n"+
		fmt.Sprintf("%032x,,https://logs.example.com/d,dave\n%032x,,https://logs.example.com/e,dave\n", 0xe1, 0xe2)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runEnv(t, nil, "", "preflight", "--cloudflare-api-url", vc.url, "--credentials", creds, bad)
	if code != 2 || !strings.Contains(stderr, `preflight: the Cloudflare credential "dave" (line 2 and 1 more row) does not work: `) ||
		!strings.Contains(stderr, "preflight found 1 problem") {
		t.Errorf("revoked credential: preflight = %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	if n := vc.calls()["dave GET /user/tokens/verify"]; n != 1 {
		t.Errorf("dave's token checked %d times at /user/tokens/verify, want 1", n)
	}
	alice := filepath.Join(dir, "alice.csv")
	if err := os.WriteFile(alice, []byte("zone_id,account_id,destination_conf,credential\n"+
		fmt.Sprintf("%032x,,https://logs.example.com/f,alice\n", 0xf1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runEnv(t, nil, "", "preflight", "--cloudflare-api-url", vc.url, "--credentials", creds, alice)
	if code != 0 || out != "preflight: Cloudflare credential \"alice\" works (user API token); 0 buckets readable\n" {
		t.Errorf("one named credential: preflight = %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}
}

// TestCredentialsFlagLines: with --credentials, a row naming an unknown
// credential, or none without a default, is a line error listing the
// known names; a broken file stops every command that takes it with exit
// 2, naming the file, the credential and the field, and no secret.
func TestCredentialsFlagLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	creds := credFile(t, dir)
	in := filepath.Join(dir, "batch.jsonl")
	if err := os.WriteFile(in, []byte(fmt.Sprintf(`{"zone_id":"%032x","destination_conf":"https://logs.example.com/a","credential":"alice"}
{"zone_id":"%032x","destination_conf":"https://logs.example.com/b","credential":"erin"}
{"zone_id":"%032x","destination_conf":"https://logs.example.com/c"}
`, 1, 2, 3)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runEnv(t, nil, "", "enqueue", "--dry-run", "--credentials", creds, in)
	for _, want := range []string{
		`line 2: credential: unknown credential "erin" (known: alice, bob, carol, dave)`,
		"line 3: credential: none given, and there is no default credential (name one of alice, bob, carol, dave, or set CLOUDFLARE_API_TOKEN)",
		"2 of 3 lines invalid; nothing was enqueued",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("enqueue --dry-run: stderr lacks %q\n(code %d) %s", want, code, stderr)
		}
	}
	if code != 2 {
		t.Errorf("enqueue --dry-run = %d, want 2\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	// With a default in the environment the third line is good; CREDENTIALS_FILE is the flag's twin.
	env := map[string]string{"CLOUDFLARE_API_TOKEN": credTokenEnv, "CREDENTIALS_FILE": creds}
	if code, _, stderr := runEnv(t, env, "", "enqueue", "--dry-run", in); code != 2 || strings.Contains(stderr, "line 3") || !strings.Contains(stderr, "line 2: credential") {
		t.Errorf("with a default: enqueue --dry-run = %d\n%s", code, stderr)
	}
	// Without a file, a named credential is unknown.
	if code, _, stderr := runEnv(t, nil, "", "enqueue", "--dry-run", in); code != 2 ||
		!strings.Contains(stderr, `line 1: credential: unknown credential "alice": no credentials file names any`) {
		t.Errorf("without a file: enqueue --dry-run = %d\n%s", code, stderr)
	}

	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("alice:\n  token: "+credTokenAlice+"\nbob:\n  email: bob@example.com\n  api_rate: 10/5m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantErr := "-credentials: credentials file " + broken + ": invalid credentials file: line 4: credential bob: key: missing: an email needs its global API key"
	for _, args := range [][]string{
		{"worker", "--redis", "redis://127.0.0.1:1/0", "--credentials", broken},
		{"enqueue", "--dry-run", "--credentials", broken, in},
		{"preflight", "--credentials", broken, in},
		{"run", "--credentials", broken, in},
	} {
		code, out, stderr := runEnv(t, map[string]string{"CLOUDFLARE_API_TOKEN": credTokenEnv}, "", args...)
		if code != 2 || !strings.Contains(stderr, wantErr) {
			t.Errorf("%s = %d, want 2 and %q\nstdout: %s\nstderr: %s", args[0], code, wantErr, out, stderr)
		}
		if strings.Contains(out+stderr, credTokenAlice) || strings.Contains(out+stderr, credTokenEnv) {
			t.Errorf("%s: a secret in the output:\n%s%s", args[0], out, stderr)
		}
	}
	missing := filepath.Join(dir, "missing.yaml")
	if code, _, stderr := runEnv(t, map[string]string{"CLOUDFLARE_API_TOKEN": credTokenEnv}, "", "worker", "--redis", "redis://127.0.0.1:1/0", "--credentials", missing); code != 2 ||
		!strings.Contains(stderr, missing) {
		t.Errorf("worker with a missing file = %d\n%s", code, stderr)
	}
}
