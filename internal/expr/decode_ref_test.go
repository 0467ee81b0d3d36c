package expr

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// The reference decoding the one-pass decoder (decode.go) is checked against: encoding/json
// into Go values, then a conversion to CEL values.

func toMap(obj map[string]any) (map[string]ref.Val, error) {
	m := make(map[string]ref.Val, len(obj))
	for k, v := range obj {
		cv, err := toVal(v)
		if err != nil {
			return nil, err
		}
		m[k] = cv
	}
	return m, nil
}

func toVal(v any) (ref.Val, error) {
	switch v := v.(type) {
	case nil:
		return types.NullValue, nil
	case bool:
		return types.Bool(v), nil
	case string:
		return types.String(v), nil
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return types.Int(i), nil
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		// 1e3 and 1200.0 are integers written as doubles; keep them ints so equality with int
		// literals and map keys behave the same as for 1000 and 1200.
		if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
			return types.Int(int64(f)), nil
		}
		return types.Double(f), nil
	case []any:
		l := make([]ref.Val, len(v))
		for i, e := range v {
			cv, err := toVal(e)
			if err != nil {
				return nil, err
			}
			l[i] = cv
		}
		return types.NewRefValList(types.DefaultTypeAdapter, l), nil
	case map[string]any:
		m, err := toMap(v)
		if err != nil {
			return nil, err
		}
		return types.NewMap(types.DefaultTypeAdapter, m), nil
	default:
		return nil, fmt.Errorf("unexpected JSON value %T", v)
	}
}

func referenceDecode(payload []byte) (ref.Val, error) {
	if !json.Valid(payload) {
		return nil, errors.New("invalid JSON")
	}
	var raw any
	dec := json.NewDecoder(bytesReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, err
	}
	return toVal(raw)
}
