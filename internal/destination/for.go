package destination

import (
	"strings"

	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// For is where the challenge file filename of destination c lives,
// read as the row's identity (nil: the worker's default credentials).
func For(c tasks.Conf, as *tasks.ReadAs, filename string) Location {
	loc := Location{Scheme: c.Type, Bucket: c.Bucket, Key: c.Key(filename), Region: c.Region, Account: c.Account}
	if c.Type == tasks.TypeAzure {
		_, loc.SAS, _ = strings.Cut(c.Raw, "?") // the reader tries the SAS the user granted Cloudflare first
	}
	if as != nil {
		loc.As = Identity{AWSProfile: as.AWSProfile, AWSRoleARN: as.AWSRoleARN, GCPCredentialsFile: as.GCPCredentialsFile}
	}
	return loc
}
