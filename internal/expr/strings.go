package expr

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// CEL's string extension's indexOf and lastIndexOf compare rune by rune at every position,
// which takes the string's length times the substring's: "aaa…a".indexOf("aaa…ab") over
// 100 KiB ran for seconds as one call, and CEL charged for it only afterwards. Herald binds both
// to linear searches, charged one unit per ten bytes like a string comparison. The extension's
// other functions are linear and CEL charges them by size.

// The string extension's overloads, as cel-go names them.
const (
	overloadIndexOf           = "string_index_of_string"
	overloadIndexOfOffset     = "string_index_of_string_int"
	overloadLastIndexOf       = "string_last_index_of_string"
	overloadLastIndexOfOffset = "string_last_index_of_string_int"
)

// linearStringSearch rebinds indexOf and lastIndexOf to searches linear in the string's length
// (strings.Index and strings.LastIndex), with the same results in runes.
func linearStringSearch() cel.EnvOption {
	str2 := []*cel.Type{cel.StringType, cel.StringType}
	str2Int := []*cel.Type{cel.StringType, cel.StringType, cel.IntType}
	return cel.Lib(reshapeLib{
		cel.Function("indexOf",
			cel.MemberOverload(overloadIndexOf, str2, cel.IntType, cel.BinaryBinding(func(s, sub ref.Val) ref.Val {
				return searchResult(indexOfOffset(string(s.(types.String)), string(sub.(types.String)), 0))
			})),
			cel.MemberOverload(overloadIndexOfOffset, str2Int, cel.IntType, cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				return searchResult(indexOfOffset(string(args[0].(types.String)), string(args[1].(types.String)), int64(args[2].(types.Int))))
			}))),
		cel.Function("lastIndexOf",
			cel.MemberOverload(overloadLastIndexOf, str2, cel.IntType, cel.BinaryBinding(func(s, sub ref.Val) ref.Val {
				return searchResult(lastIndexOf(string(s.(types.String)), string(sub.(types.String))))
			})),
			cel.MemberOverload(overloadLastIndexOfOffset, str2Int, cel.IntType, cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				return searchResult(lastIndexOfOffset(string(args[0].(types.String)), string(args[1].(types.String)), int64(args[2].(types.Int))))
			}))),
	})
}

func searchResult(i int64, err error) ref.Val {
	if err != nil {
		return types.WrapErr(err)
	}
	return types.Int(i)
}

// byteOffset returns the byte offset of s's rune number runes, or len(s) past its end.
func byteOffset(s string, runes int64) int {
	for i := range s {
		if runes == 0 {
			return i
		}
		runes--
	}
	return len(s)
}

// indexOfOffset is the rune index of sub's first occurrence in s at or after rune off, or -1.
func indexOfOffset(s, sub string, off int64) (int64, error) {
	if off < 0 {
		return -1, fmt.Errorf("index out of range: %d", off)
	}
	n := int64(utf8.RuneCountInString(s))
	if sub == "" {
		return min(off, n), nil
	}
	if off >= n {
		return -1, nil
	}
	b := byteOffset(s, off)
	i := strings.Index(s[b:], sub)
	if i < 0 {
		return -1, nil
	}
	return off + int64(utf8.RuneCountInString(s[b:b+i])), nil
}

// lastIndexOf is the rune index of sub's last occurrence in s, or -1.
func lastIndexOf(s, sub string) (int64, error) {
	n := int64(utf8.RuneCountInString(s))
	if sub == "" {
		return n, nil
	}
	if len(s) < len(sub) {
		return -1, nil
	}
	return lastIndexOfOffset(s, sub, n-1)
}

// lastIndexOfOffset is the rune index of sub's last occurrence in s starting at or before rune
// off, or -1.
func lastIndexOfOffset(s, sub string, off int64) (int64, error) {
	if off < 0 {
		return -1, fmt.Errorf("index out of range: %d", off)
	}
	n := int64(utf8.RuneCountInString(s))
	if sub == "" {
		return min(off, n), nil
	}
	if off >= n {
		return -1, nil
	}
	end := min(byteOffset(s, off)+len(sub), len(s))
	i := strings.LastIndex(s[:end], sub)
	if i < 0 {
		return -1, nil
	}
	return int64(utf8.RuneCountInString(s[:i])), nil
}

// searchCostTrackers charge the linear searches one unit per ten bytes of the string and the
// substring, replacing CEL's charge for its quadratic search.
func searchCostTrackers() []cost.TrackerOption {
	byBytes := func(args []ref.Val, _ ref.Val) *uint64 {
		var n uint64
		for _, a := range args {
			if s, ok := a.(types.String); ok {
				n += uint64(len(s))
			}
		}
		c := 1 + n/10
		return &c
	}
	var opts []cost.TrackerOption
	for _, id := range []string{overloadIndexOf, overloadIndexOfOffset, overloadLastIndexOf, overloadLastIndexOfOffset} {
		opts = append(opts, cost.OverloadTracker(id, byBytes))
	}
	return opts
}
