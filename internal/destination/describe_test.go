package destination_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/heraldhq/herald/internal/broker/kafka"
	natsdest "github.com/heraldhq/herald/internal/broker/nats"
	"github.com/heraldhq/herald/internal/broker/pubsub"
	"github.com/heraldhq/herald/internal/broker/rabbitmq"
	"github.com/heraldhq/herald/internal/broker/redisstream"
	"github.com/heraldhq/herald/internal/broker/sqs"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/source"
)

// checked is what a destination type and a broker source type (source.Type) have in common: a
// name, settings checked field by field, and credentials.
type checked interface {
	Name() string
	Check(json.RawMessage) (json.RawMessage, []*destination.FieldError)
	Secrets() []string
}

// brokerTypes are every broker destination type the node registers (internal/node/destinations.go)
// and every broker source type, by "destination/<name>" and "source/<name>".
func brokerTypes() map[string]checked {
	env, senv := destination.Env{}, source.Env{}
	out := map[string]checked{}
	for _, typ := range []destination.Type{natsdest.New(env), rabbitmq.New(env), redisstream.New(env), kafka.New(env), pubsub.New(env), sqs.New(env)} {
		out["destination/"+typ.Name()] = typ
	}
	for _, typ := range []source.Type{natsdest.NewSource(senv), rabbitmq.NewSource(senv), redisstream.NewSource(senv), kafka.NewSource(senv),
		pubsub.NewSource(senv), sqs.NewSource(senv)} {
		out["source/"+typ.Name()] = typ
	}
	return out
}

// sample is a value of the kind, to show that Check knows the field.
func sample(k destination.SettingKind) any {
	switch k {
	case destination.SettingBool:
		return true
	case destination.SettingInt:
		return 1
	case destination.SettingList:
		return []string{"x"}
	case destination.SettingDuration:
		return "5s"
	default:
		return "x"
	}
}

// The descriptions the forms are built from agree with what each type's Check accepts: every
// described setting is a field Check knows, every credential Secrets() names is described as a
// secret (and nothing else is), and every field Check requires of empty settings is described as
// required (or is a credential required only without another setting, like Pub/Sub's). The
// same for the broker source types, which describe their settings the same way; and a value of
// each described setting's default is accepted by Check.
func TestDescriber_AgreesWithCheckAndSecrets(t *testing.T) {
	t.Parallel()
	kinds := []destination.SettingKind{destination.SettingString, destination.SettingBool, destination.SettingInt, destination.SettingList, destination.SettingDuration}
	types := brokerTypes()
	if len(types) != 12 {
		t.Fatalf("%d broker types, want six destination and six source types", len(types))
	}
	for name, typ := range types {
		t.Run(name, func(t *testing.T) {
			settings := destination.Describe(typ)
			if len(settings) == 0 {
				t.Fatalf("%s does not describe its settings", typ.Name())
			}
			_, errs := typ.Check(json.RawMessage(`{"zz_not_a_setting": 1}`))
			if len(errs) != 1 || errs[0].Field != "zz_not_a_setting" {
				t.Fatalf("an unknown field gives %v, want one error at it", errs)
			}
			unknown := errs[0].Message
			byName := map[string]destination.Setting{}
			var secrets []string
			for _, s := range settings {
				if _, dup := byName[s.Name]; dup || s.Name == "" {
					t.Errorf("setting %q empty or described twice", s.Name)
				}
				byName[s.Name] = s
				if !slices.Contains(kinds, s.Kind) {
					t.Errorf("%s: kind %q", s.Name, s.Kind)
				}
				if s.Help == "" {
					t.Errorf("%s: no help", s.Name)
				}
				if s.Secret {
					secrets = append(secrets, s.Name)
				}
				if s.Default != nil && s.Required {
					t.Errorf("%s: both required and defaulted", s.Name)
				}
				raw, _ := json.Marshal(map[string]any{s.Name: sample(s.Kind)})
				_, errs := typ.Check(raw)
				for _, e := range errs {
					if e.Field == s.Name && e.Message == unknown {
						t.Errorf("%s is described but Check does not know it: %s", s.Name, e.Message)
					}
				}
				if s.Default != nil {
					raw, _ := json.Marshal(map[string]any{s.Name: s.Default})
					_, errs := typ.Check(raw)
					for _, e := range errs {
						if e.Field == s.Name {
							t.Errorf("%s: Check refuses its described default %v: %s", s.Name, s.Default, e.Message)
						}
					}
				}
			}
			if !slices.ContainsFunc(settings, func(s destination.Setting) bool { return s.Destination && !s.Secret }) {
				t.Errorf("no setting says where messages go or are read from (Destination)")
			}
			want := slices.Clone(typ.Secrets())
			slices.Sort(want)
			slices.Sort(secrets)
			if !slices.Equal(want, secrets) {
				t.Errorf("secret settings %v, Secrets() %v", secrets, want)
			}
			_, errs = typ.Check(json.RawMessage(`{}`))
			for _, e := range errs {
				s, ok := byName[e.Field]
				if !ok {
					t.Errorf("Check of {} complains about %q, which is not described", e.Field)
					continue
				}
				if !s.Required && !s.Secret {
					t.Errorf("Check of {} requires %s, described as optional", e.Field)
				}
			}
		})
	}
}
