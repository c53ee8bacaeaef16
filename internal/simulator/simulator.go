package simulator

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
)

// Endpoint names, the keys of Stats.Requests. The Logpush ones match the
// client's metrics labels.
const (
	// EndpointChallenge is POST .../logpush/ownership.
	EndpointChallenge = "ownership"
	// EndpointValidate is POST .../logpush/ownership/validate.
	EndpointValidate = "ownership_validate"
	// EndpointDestinationExists is POST .../logpush/validate/destination/exists.
	EndpointDestinationExists = "destination_exists"
	// EndpointJobs is GET .../logpush/jobs, the list of jobs.
	EndpointJobs = "jobs"
	// EndpointCreateJob is POST .../logpush/jobs.
	EndpointCreateJob = "create_job"
	// EndpointJob is GET .../logpush/jobs/{job_id}.
	EndpointJob = "job"
	// EndpointVerify is GET /user/tokens/verify.
	EndpointVerify = "verify"
	// EndpointAccountVerify is GET /accounts/{account_id}/tokens/verify.
	EndpointAccountVerify = "account_verify"
	// EndpointUser is GET /user.
	EndpointUser = "user"
	// EndpointUnknown is any other path.
	EndpointUnknown = "unknown"
)

// Limits of the request fields, from Cloudflare's schema.
const (
	maxConf      = 4096
	maxChallenge = 4096
	maxBody      = 64 << 10
)

// Simulator is the simulated API. It is safe for concurrent use.
type Simulator struct {
	cfg Config
	log *slog.Logger
	key []byte // HMAC key of the tokens

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // running writes

	mu      sync.Mutex
	rnd     *rand.Rand
	closed  bool
	dests   map[[32]byte]*dest
	windows map[string]*window
	jobs    map[string][]*job // by scopeKey, in creation order
	lastJob int               // the last job id given, across scopes
	stats   Stats
}

// dest is the state of one (scope, id, destination_conf).
type dest struct {
	gen   uint64 // challenges issued, to tell timers apart
	timer *time.Timer
}

// New returns a Simulator for cfg, with defaults applied.
func New(cfg Config) (*Simulator, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	key := make([]byte, 32)
	if _, err := crand.Read(key); err != nil {
		return nil, fmt.Errorf("simulator: token key: %w", err)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Simulator{
		cfg:     cfg,
		log:     cfg.Logger,
		key:     key,
		ctx:     ctx,
		cancel:  cancel,
		rnd:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		dests:   make(map[[32]byte]*dest),
		windows: make(map[string]*window),
		jobs:    make(map[string][]*job),
		stats:   newStats(),
	}, nil
}

// Close stops the pending delayed writes, cancels the running ones and waits
// for them. The simulator still answers afterwards, but writes nothing.
func (s *Simulator) Close() {
	s.mu.Lock()
	s.closed = true
	for _, d := range s.dests {
		if d.timer != nil {
			d.timer.Stop()
			d.timer = nil
		}
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// ServeHTTP answers one API call.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusWriter{ResponseWriter: w}
	rt := route(r)
	defer func() {
		s.count(rt.endpoint, rec.status)
		s.log.Debug("simulator request", "method", r.Method, "endpoint", rt.endpoint, "status", rec.status)
	}()
	if rt.fail != nil {
		writeFailure(rec, rt.fail)
		return
	}
	cred, fail := s.authenticate(r, rt)
	if fail != nil {
		writeFailure(rec, fail)
		return
	}
	if s.rateLimited(rec, cred) {
		return
	}
	if s.inject(rec, r) {
		return
	}
	switch rt.endpoint {
	case EndpointChallenge:
		s.challenge(rec, r, rt)
	case EndpointValidate:
		s.validate(rec, r, rt)
	case EndpointDestinationExists:
		s.destinationExists(rec, r, rt)
	case EndpointJobs:
		s.listJobs(rec, rt)
	case EndpointCreateJob:
		s.createJob(rec, r, rt)
	case EndpointJob:
		s.getJob(rec, rt)
	case EndpointFields:
		s.fields(rec, rt)
	case EndpointVerify, EndpointAccountVerify:
		writeJSON(rec, http.StatusOK, envelope{
			Success:  true,
			Errors:   []message{},
			Messages: []message{{Code: 10000, Message: "This API Token is valid and active"}},
			Result:   map[string]string{"id": cred.id, "status": "active"},
		})
	case EndpointUser:
		writeJSON(rec, http.StatusOK, success(map[string]string{"id": cred.id, "email": cred.email}))
	}
}

// Stats returns a copy of the counters.
func (s *Simulator) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.clone()
}

// target is a routed request.
type target struct {
	endpoint string
	scope    string // "zone" or "account"
	id       string
	// job is the job id of EndpointJob.
	job int
	// dataset is the dataset of EndpointFields.
	dataset string
	fail    *failure
}

// route maps a request to an endpoint; fail is set for unknown routes,
// wrong methods and invalid identifiers.
func route(r *http.Request) target {
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/client/v4"); ok && (rest == "" || rest[0] == '/') {
		path = rest
	}
	seg := strings.Split(strings.Trim(path, "/"), "/")
	var t target
	method := http.MethodPost
	switch {
	case len(seg) >= 4 && (seg[0] == "zones" || seg[0] == "accounts") && seg[2] == "logpush" &&
		logpushEndpoint(seg[3:]) != "":
		t.scope, t.id = strings.TrimSuffix(seg[0], "s"), seg[1]
		t.endpoint = logpushEndpoint(seg[3:])
		if t.endpoint == EndpointJobs {
			// One path, two endpoints: GET lists, POST creates.
			method = http.MethodGet
			if r.Method == http.MethodPost {
				t.endpoint, method = EndpointCreateJob, http.MethodPost
			}
		}
		if t.endpoint == EndpointJob {
			method = http.MethodGet
			n, err := strconv.Atoi(seg[4])
			if err != nil || n < 1 {
				t.fail = fail(http.StatusBadRequest, message{Code: 1001, Message: "job_id must be a positive integer"})
				return t
			}
			t.job = n
		}
		if t.endpoint == EndpointFields {
			method, t.dataset = http.MethodGet, seg[4]
		}
	case len(seg) == 3 && seg[0] == "user" && seg[1] == "tokens" && seg[2] == "verify":
		t.endpoint, method = EndpointVerify, http.MethodGet
	case len(seg) == 4 && seg[0] == "accounts" && seg[2] == "tokens" && seg[3] == "verify":
		t.endpoint, method, t.scope, t.id = EndpointAccountVerify, http.MethodGet, "account", seg[1]
	case len(seg) == 1 && seg[0] == "user":
		t.endpoint, method = EndpointUser, http.MethodGet
	default:
		t.endpoint = EndpointUnknown
		t.fail = fail(http.StatusNotFound, message{Code: 7000, Message: "No route for that URI"})
		return t
	}
	if r.Method != method {
		t.fail = fail(http.StatusMethodNotAllowed, message{Code: 7001, Message: "Method not allowed"})
		return t
	}
	if t.id != "" && !cloudflare.IsIdentifier(t.id) {
		t.fail = fail(http.StatusBadRequest, message{Code: 7003,
			Message: "Could not route to " + r.URL.Path + ", perhaps your object identifier is invalid?"})
	}
	return t
}

// logpushEndpoint maps the path below {zones|accounts}/{id}/logpush/ to its
// endpoint (EndpointJobs for both methods of .../jobs), or "".
func logpushEndpoint(seg []string) string {
	switch strings.Join(seg, "/") {
	case "ownership":
		return EndpointChallenge
	case "ownership/validate":
		return EndpointValidate
	case "validate/destination/exists":
		return EndpointDestinationExists
	case "jobs":
		return EndpointJobs
	}
	if len(seg) == 2 && seg[0] == "jobs" && seg[1] != "" {
		return EndpointJob
	}
	if len(seg) == 3 && seg[0] == "datasets" && seg[1] != "" && seg[2] == "fields" {
		return EndpointFields
	}
	return ""
}

// credential is who made an authenticated call.
type credential struct {
	key   string // rate-limit key: mode and a hash, never the secret
	id    string // 32 hex, the token or user id answered by verify
	email string
	// limit is this credential's RateLimit (Config.TokenRateLimits).
	limit int
}

// authenticate checks the auth headers like Cloudflare: malformed or missing
// headers are 400 code 6003 with an error_chain naming the header, wrong
// values 403 code 10000. The token checks answer like Cloudflare's: 401
// code 1000 for a token they do not verify, which GET /user/tokens/verify
// is for an account-owned token (Config.TokenAccountID), and GET
// /accounts/{id}/tokens/verify for any token but an account-owned one of
// that account.
func (s *Simulator) authenticate(r *http.Request, rt target) (credential, *failure) {
	endpoint := rt.endpoint
	authz := r.Header.Get("Authorization")
	email, key := r.Header.Get("X-Auth-Email"), r.Header.Get("X-Auth-Key")
	anyAccepted := s.cfg.APIToken == "" && s.cfg.Email == "" && s.cfg.APIKey == ""
	verify := endpoint == EndpointVerify || endpoint == EndpointAccountVerify
	switch {
	case authz != "":
		scheme, tok, _ := strings.Cut(authz, " ")
		if !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
			return credential{}, badHeaders(6111, "Invalid format for Authorization header")
		}
		known := (anyAccepted || equal(tok, s.cfg.APIToken)) && !slices.Contains(s.cfg.RevokedTokens, tok)
		owner := "" // the account of an account-owned token; "" for a user token
		if known && !anyAccepted {
			owner = s.cfg.TokenAccountID
		}
		switch {
		case verify && (!known || endpoint == EndpointVerify && owner != "" || endpoint == EndpointAccountVerify && owner != rt.id):
			return credential{}, invalidToken()
		case !known:
			return credential{}, authError()
		}
		id := hash("token", tok)
		limit, ok := s.cfg.TokenRateLimits[tok]
		if !ok {
			limit = s.cfg.RateLimit
		}
		return credential{key: "token:" + id[:16], id: id[:32], email: "simulator@example.com", limit: limit}, nil
	case email != "" || key != "":
		if verify {
			return credential{}, badHeaders(6111, "Invalid format for Authorization header")
		}
		if email == "" {
			return credential{}, badHeaders(6102, "Invalid format for X-Auth-Email header")
		}
		if key == "" {
			return credential{}, badHeaders(6103, "Invalid format for X-Auth-Key header")
		}
		if !anyAccepted && (!equal(email, s.cfg.Email) || !equal(key, s.cfg.APIKey)) {
			return credential{}, authError()
		}
		id := hash("key", email, key)
		return credential{key: "key:" + id[:16], id: id[:32], email: email, limit: s.cfg.RateLimit}, nil
	default:
		return credential{}, badHeaders(9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
	}
}

// invalidToken is the token checks' answer to a token they do not verify.
func invalidToken() *failure {
	return fail(http.StatusUnauthorized, message{Code: 1000, Message: "Invalid API Token"})
}

// equal compares a presented secret with the configured one in constant
// time; an unconfigured secret accepts nothing.
func equal(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func badHeaders(code int, msg string) *failure {
	return fail(http.StatusBadRequest, message{Code: 6003, Message: "Invalid request headers",
		ErrorChain: []message{{Code: code, Message: msg}}})
}

func authError() *failure {
	return fail(http.StatusForbidden, message{Code: 10000, Message: "Authentication error"})
}

// challengeRequest is the body of both ownership calls.
type challengeRequest struct {
	DestinationConf    *string `json:"destination_conf"`
	OwnershipChallenge *string `json:"ownership_challenge"`
}

// decode reads and checks the request body; code 1001 for every problem.
func decode(w http.ResponseWriter, r *http.Request, wantChallenge bool) (challengeRequest, *failure) {
	var req challengeRequest
	invalid := func(msg string) *failure {
		return fail(http.StatusBadRequest, message{Code: 1001, Message: msg})
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(&req); err != nil {
		return req, invalid("Malformed JSON in request body")
	}
	switch {
	case req.DestinationConf == nil || *req.DestinationConf == "":
		return req, invalid("destination_conf is required")
	case len(*req.DestinationConf) > maxConf:
		return req, invalid(fmt.Sprintf("destination_conf must be at most %d characters", maxConf))
	case !wantChallenge:
	case req.OwnershipChallenge == nil || *req.OwnershipChallenge == "":
		return req, invalid("ownership_challenge is required")
	case len(*req.OwnershipChallenge) > maxChallenge || !cloudflare.IsChallengeText(*req.OwnershipChallenge):
		return req, invalid("ownership_challenge is invalid")
	}
	return req, nil
}

// challenge issues a token, answers its filename and schedules the write.
// As on Cloudflare, the file is one fixed object per resolved path,
// <path>/ownership-challenge.txt with {DATE} filled in: every destination
// that pushes to that path shares it, and each challenge overwrites it.
func (s *Simulator) challenge(w http.ResponseWriter, r *http.Request, t target) {
	req, f := decode(w, r, false)
	if f != nil {
		writeFailure(w, f)
		return
	}
	conf := *req.DestinationConf
	prefix, err := pathPrefix(conf)
	if err != nil {
		writeFailure(w, fail(http.StatusBadRequest, message{Code: 1001, Message: "destination_conf is invalid: " + err.Error()}))
		return
	}
	now := s.cfg.Now()
	filename := cloudflare.ChallengeFile(prefix, now)
	key := destKey(t, conf)

	s.mu.Lock()
	jti := s.rnd.Uint64()
	delay := s.cfg.WriteDelay
	if s.cfg.WriteJitter > 0 {
		delay += time.Duration(s.rnd.Int64N(int64(s.cfg.WriteJitter)))
	}
	s.mu.Unlock()
	token := s.token(t, conf, now, jti)

	s.mu.Lock()
	d := s.dests[key]
	if d == nil {
		d = &dest{}
		s.dests[key] = d
	}
	d.gen++
	if d.timer != nil {
		// A later challenge of the same destination supersedes its pending
		// write: on Cloudflare the earlier file would already be there, and
		// overwritten now.
		d.timer.Stop()
		d.timer = nil
	}
	if !s.closed {
		gen := d.gen
		d.timer = time.AfterFunc(delay, func() { s.write(key, gen, conf, filename, token) })
	}
	s.stats.ChallengesIssued++
	s.stats.Destinations = len(s.dests)
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, success(map[string]any{"filename": filename, "message": "", "valid": true}))
}

// write runs the delayed write of one challenge.
func (s *Simulator) write(key [32]byte, gen uint64, conf, filename, token string) {
	s.mu.Lock()
	d := s.dests[key]
	if s.closed || d == nil || d.gen != gen {
		// Closed, or superseded by a later challenge after this timer fired.
		s.mu.Unlock()
		return
	}
	d.timer = nil
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
	defer cancel()
	err := s.cfg.Write(ctx, conf, filename, []byte(token))

	s.mu.Lock()
	if err != nil {
		s.stats.WriteErrors++
	} else {
		s.stats.FilesWritten++
	}
	s.mu.Unlock()
	if err != nil {
		// The filename derives from the conf's path, which holds the secret
		// of some destinations (sumo://.../http/<code>); so may the error.
		secrets := redact.Secrets(conf)
		s.log.Warn("simulator: writing challenge file failed", "destination", redact.String(conf),
			"filename", redact.Values(filename, secrets...), "err", redact.Values(redact.String(err.Error()), secrets...))
	}
}

// validate accepts any unexpired token issued for this exact scope, id and
// destination_conf; a token for another destination, an expired one or one
// the simulator never issued is answered 400 code 1002.
func (s *Simulator) validate(w http.ResponseWriter, r *http.Request, t target) {
	req, f := decode(w, r, true)
	if f != nil {
		writeFailure(w, f)
		return
	}
	verdict := s.check(*req.OwnershipChallenge, t, *req.DestinationConf, s.cfg.Now())
	s.mu.Lock()
	switch verdict {
	case tokenValid:
		s.stats.ValidationsOK++
	case tokenForeign:
		s.stats.ValidationsFailed++
		s.stats.ForeignTokens++
	default:
		s.stats.ValidationsFailed++
	}
	s.mu.Unlock()
	if verdict != tokenValid {
		writeFailure(w, fail(http.StatusBadRequest, message{Code: codeIncorrectChallenge, Message: "incorrect ownership challenge"}))
		return
	}
	writeJSON(w, http.StatusOK, success(map[string]bool{"valid": true}))
}

// destKey identifies a destination: scope, id and the byte-identical conf.
func destKey(t target, conf string) [32]byte {
	return sha256.Sum256([]byte(t.scope + "|" + t.id + "|" + conf))
}

// pathPrefix is the conf's path inside its bucket: "logs/x" for
// s3://bucket/logs/x?region=..., "tmp/d/x" for file:///tmp/d/x (the
// filesystem root plays the bucket).
func pathPrefix(conf string) (string, error) {
	u, err := url.Parse(conf)
	if err != nil {
		return "", errors.New("not a URL")
	}
	if u.Scheme == "" {
		return "", errors.New("missing scheme")
	}
	return strings.Trim(u.Path, "/"), nil
}

// hash returns the hex SHA-256 of parts, NUL-separated.
func hash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])
}
