package tasks

import (
	"regexp"
	"strings"
)

// ReadAsColumns are the optional input columns (CSV) or keys (JSONL) that
// name, per row, the identity that reads the destination in a multi-account
// batch. They name credentials but hold none.
var ReadAsColumns = []string{"aws_profile", "aws_role_arn", "gcp_credentials_file"}

// ReadAs is the identity to read a destination with; nil or zero: the
// worker's own default credentials.
type ReadAs struct {
	AWSProfile         string `json:"aws_profile,omitempty"`
	AWSRoleARN         string `json:"aws_role_arn,omitempty"`
	GCPCredentialsFile string `json:"gcp_credentials_file,omitempty"`
}

var (
	roleARN     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
	profileName = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
)

// ParseReadAs reads the identity columns of a row; nil when none is set.
// Errors are *FieldError naming the column.
func ParseReadAs(extra map[string]string) (*ReadAs, error) {
	r := ReadAs{AWSProfile: strings.TrimSpace(extra["aws_profile"]), AWSRoleARN: strings.TrimSpace(extra["aws_role_arn"]),
		GCPCredentialsFile: strings.TrimSpace(extra["gcp_credentials_file"])}
	if r == (ReadAs{}) {
		return nil, nil
	}
	if r.AWSProfile != "" && !profileName.MatchString(r.AWSProfile) {
		return nil, &FieldError{Field: "aws_profile", Msg: "not a profile name"}
	}
	if r.AWSRoleARN != "" && !roleARN.MatchString(r.AWSRoleARN) {
		return nil, &FieldError{Field: "aws_role_arn", Msg: "want a role ARN such as arn:aws:iam::123456789012:role/logpush-reader"}
	}
	if r.GCPCredentialsFile != "" && !strings.HasPrefix(r.GCPCredentialsFile, "/") {
		return nil, &FieldError{Field: "gcp_credentials_file", Msg: "want an absolute path"}
	}
	return &r, nil
}
