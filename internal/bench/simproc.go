package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/credentials"
)

// apiSim is scenario a's simulator: in a process of its own (the binary's
// simulate command) when the bench can start one, so that the bench
// process's CPU is the pipeline's alone; otherwise in this process.
type apiSim struct {
	// URL is the API base URL, ".../client/v4".
	URL string
	// S3 is the storage the simulator writes challenge files to and the
	// worker reads them from: an in-memory S3 (gofakes3) served by the
	// simulator's process.
	S3 credentials.Storage
	// Own is set when the simulator runs in its own process.
	Own  bool
	proc *child
	in   *simHarness
}

// startAPISim starts scenario a's simulator: instant challenge files, no
// rate limit, s3:// destinations written straight into an S3 server in
// the simulator's process (simulate --serve-s3), read by the worker
// through the AWS SDK as users' workers do.
func (r *runner) startAPISim(ctx context.Context) (*apiSim, error) {
	if r.env.Worker == nil {
		h, err := newSim(simOptions{S3: true})
		if err != nil {
			return nil, err
		}
		return &apiSim{URL: h.URL, S3: benchS3(h.s3URL), in: h}, nil
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s3Addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"simulate", "--addr", addr, "--serve-s3", s3Addr, "--write-delay", "0", "--write-jitter", "0", "--log-level", "warn"}
	c, err := r.startProc(ctx, "simulator", args, nil, addr, "/debug/stats")
	if err != nil {
		return nil, err
	}
	return &apiSim{URL: "http://" + addr + "/client/v4", S3: benchS3("http://" + s3Addr), Own: true, proc: c}, nil
}

// benchS3 is how a worker reads the bench's S3 at url: path-style, with a
// static key (the server checks none).
func benchS3(url string) credentials.Storage {
	return credentials.Storage{S3Endpoint: url, S3UsePathStyle: true, S3AccessKeyID: benchS3Key, S3SecretAccessKey: benchS3Secret}
}

const benchS3Key, benchS3Secret = "bench-access-key", "bench-secret-key"

// s3Env is benchS3 for a worker process: the AWS SDK's environment.
func s3Env(url string) []string {
	return []string{"AWS_ENDPOINT_URL_S3=" + url, "AWS_ACCESS_KEY_ID=" + benchS3Key, "AWS_SECRET_ACCESS_KEY=" + benchS3Secret,
		"AWS_REGION=us-east-1", "AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
}

// cpu is the simulator process's user plus system CPU time so far; 0 when
// it runs in this process (its CPU is then this process's).
func (s *apiSim) cpu() time.Duration {
	if s.proc == nil {
		return 0
	}
	return procCPU(s.proc.cmd.Process.Pid)
}

// calls is the number of API calls the simulator answered so far.
func (s *apiSim) calls() int {
	if s.in != nil {
		return s.in.sim.Stats().Calls()
	}
	resp, err := http.Get("http://" + s.proc.metricsAddr + "/debug/stats")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct{ Calls int }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return 0
	}
	return st.Calls
}

func (s *apiSim) close() {
	if s.in != nil {
		s.in.close()
		return
	}
	s.proc.stop()
}

// procCPU is a running process's user plus system CPU time, from
// /proc/<pid>/stat (utime and stime, in clock ticks of 1/100 s, the
// USER_HZ of every Linux platform Go supports); 0 without /proc.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// the fields after it start at field 3 (state).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * (time.Second / 100)
}
