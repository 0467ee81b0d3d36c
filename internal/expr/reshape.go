package expr

import (
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// The reshape functions are written in Go because the same reshapes in plain CEL take a
// comprehension per nesting level, which is hard to read and costs more to run.

const (
	overloadOmit   = "expr_omit_map_list"
	overloadPick   = "expr_pick_map_list"
	overloadMerge  = "expr_merge_map_map"
	overloadRename = "expr_rename_map_map"
)

func reshapeFunctions() cel.EnvOption {
	mapDyn := cel.MapType(cel.StringType, cel.DynType)
	mapStr := cel.MapType(cel.StringType, cel.StringType)
	listStr := cel.ListType(cel.StringType)
	return cel.Lib(reshapeLib{
		cel.Function("omit", cel.Overload(overloadOmit, []*cel.Type{mapDyn, listStr}, mapDyn,
			cel.BinaryBinding(func(m, paths ref.Val) ref.Val { return reshapePaths(m, paths, omitMap) }))),
		cel.Function("pick", cel.Overload(overloadPick, []*cel.Type{mapDyn, listStr}, mapDyn,
			cel.BinaryBinding(func(m, paths ref.Val) ref.Val { return reshapePaths(m, paths, pickMap) }))),
		cel.Function("merge", cel.Overload(overloadMerge, []*cel.Type{mapDyn, mapDyn}, mapDyn,
			cel.BinaryBinding(merge))),
		cel.Function("rename", cel.Overload(overloadRename, []*cel.Type{mapDyn, mapStr}, mapDyn,
			cel.BinaryBinding(rename))),
	})
}

// reshapeLib bundles the functions as one cel.Library so they are declared and bound together.
type reshapeLib []cel.EnvOption

func (l reshapeLib) CompileOptions() []cel.EnvOption   { return l }
func (reshapeLib) ProgramOptions() []cel.ProgramOption { return nil }

// reshapeCostTrackers charge each reshape call for the entries it reads and writes, so that a
// comprehension calling them many times runs into the cost limit like any other.
func reshapeCostTrackers() []cost.TrackerOption {
	byPaths := func(args []ref.Val, result ref.Val) *uint64 {
		c := 1 + size(args[0]) + size(result)
		if len(args) == 2 {
			if l, ok := args[1].(traits.Lister); ok {
				it := l.Iterator()
				for it.HasNext() == types.True {
					c += pathCost(args[0], it.Next())
				}
			}
		}
		return &c
	}
	bySizes := func(args []ref.Val, result ref.Val) *uint64 {
		c := 1 + size(result)
		for _, a := range args {
			c += size(a)
		}
		return &c
	}
	return []cost.TrackerOption{
		cost.OverloadTracker(overloadOmit, byPaths),
		cost.OverloadTracker(overloadPick, byPaths),
		cost.OverloadTracker(overloadMerge, bySizes),
		cost.OverloadTracker(overloadRename, bySizes),
	}
}

func size(v ref.Val) uint64 {
	if s, ok := v.(traits.Sizer); ok {
		if n, ok := s.Size().(types.Int); ok && n > 0 {
			return uint64(n)
		}
	}
	return 0
}

// pathCost is the number of entries copied along a dotted path: the sizes of the nested maps
// below the top level that the path walks through.
func pathCost(m ref.Val, path ref.Val) uint64 {
	p, ok := path.(types.String)
	if !ok {
		return 1
	}
	var c uint64 = 1
	for _, key := range strings.Split(string(p), ".") {
		mm, ok := m.(traits.Mapper)
		if !ok {
			break
		}
		v, found := mm.Find(types.String(key))
		if !found {
			break
		}
		c += size(v)
		m = v
	}
	return c
}

// pathTree is a set of dotted paths split into a tree: a nil subtree means the whole key.
type pathTree map[string]pathTree

func newPathTree(paths traits.Lister) (pathTree, ref.Val) {
	t := pathTree{}
	it := paths.Iterator()
	for it.HasNext() == types.True {
		p, ok := it.Next().(types.String)
		if !ok {
			return nil, types.NewErr("paths must be strings")
		}
		if p == "" {
			return nil, types.NewErr("empty path")
		}
		node := t
		parts := strings.Split(string(p), ".")
		for i, part := range parts {
			if part == "" {
				return nil, types.NewErr("invalid path %q", string(p))
			}
			sub, seen := node[part]
			if seen && sub == nil {
				break // an ancestor is already taken whole
			}
			if i == len(parts)-1 {
				node[part] = nil
				break
			}
			if sub == nil {
				sub = pathTree{}
				node[part] = sub
			}
			node = sub
		}
	}
	return t, nil
}

func reshapePaths(m, paths ref.Val, apply func(traits.Mapper, pathTree) (map[string]ref.Val, ref.Val)) ref.Val {
	mm, ok := m.(traits.Mapper)
	if !ok {
		return types.MaybeNoSuchOverloadErr(m)
	}
	pl, ok := paths.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(paths)
	}
	tree, errVal := newPathTree(pl)
	if errVal != nil {
		return errVal
	}
	out, errVal := apply(mm, tree)
	if errVal != nil {
		return errVal
	}
	return types.NewMap(types.DefaultTypeAdapter, out)
}

// omitMap copies m without the paths in t; maps not on a path are shared, not copied.
func omitMap(m traits.Mapper, t pathTree) (map[string]ref.Val, ref.Val) {
	out := make(map[string]ref.Val, size(m))
	add := func(k string, v ref.Val) ref.Val {
		sub, onPath := t[k]
		switch {
		case !onPath:
			out[k] = v
		case sub == nil:
			// omitted
		default:
			if vm, ok := v.(traits.Mapper); ok {
				inner, errVal := omitMap(vm, sub)
				if errVal != nil {
					return errVal
				}
				v = types.NewMap(types.DefaultTypeAdapter, inner)
			}
			out[k] = v
		}
		return nil
	}
	if sm, ok := m.Value().(map[string]ref.Val); ok {
		// The maps of an Input: skip CEL's iterator, which allocates per key.
		for k, v := range sm {
			if errVal := add(k, v); errVal != nil {
				return nil, errVal
			}
		}
		return out, nil
	}
	it := m.Iterator()
	for it.HasNext() == types.True {
		k := it.Next()
		ks, ok := k.(types.String)
		if !ok {
			return nil, types.NewErr("map key %v is not a string", k)
		}
		if errVal := add(string(ks), m.Get(k)); errVal != nil {
			return nil, errVal
		}
	}
	return out, nil
}

// pickMap copies only the paths in t out of m; a nested map appears only if something in it was
// picked, and paths that are missing are skipped.
func pickMap(m traits.Mapper, t pathTree) (map[string]ref.Val, ref.Val) {
	out := make(map[string]ref.Val, len(t))
	for k, sub := range t {
		v, found := m.Find(types.String(k))
		if !found {
			continue
		}
		if types.IsError(v) {
			return nil, v
		}
		if sub == nil {
			out[k] = v
			continue
		}
		vm, ok := v.(traits.Mapper)
		if !ok {
			continue
		}
		inner, errVal := pickMap(vm, sub)
		if errVal != nil {
			return nil, errVal
		}
		if len(inner) > 0 {
			out[k] = types.NewMap(types.DefaultTypeAdapter, inner)
		}
	}
	return out, nil
}

func merge(a, b ref.Val) ref.Val {
	am, ok := a.(traits.Mapper)
	if !ok {
		return types.MaybeNoSuchOverloadErr(a)
	}
	bm, ok := b.(traits.Mapper)
	if !ok {
		return types.MaybeNoSuchOverloadErr(b)
	}
	out := make(map[string]ref.Val, size(am)+size(bm))
	for _, m := range []traits.Mapper{am, bm} {
		if errVal := copyInto(out, m, nil); errVal != nil {
			return errVal
		}
	}
	return types.NewMap(types.DefaultTypeAdapter, out)
}

func rename(m, names ref.Val) ref.Val {
	mm, ok := m.(traits.Mapper)
	if !ok {
		return types.MaybeNoSuchOverloadErr(m)
	}
	nm, ok := names.(traits.Mapper)
	if !ok {
		return types.MaybeNoSuchOverloadErr(names)
	}
	out := make(map[string]ref.Val, size(mm))
	if errVal := copyInto(out, mm, nm); errVal != nil {
		return errVal
	}
	// Renamed keys are written last so that they win over a key that already had the new name.
	it := nm.Iterator()
	for it.HasNext() == types.True {
		from := it.Next()
		to, ok := nm.Get(from).(types.String)
		if !ok {
			return types.NewErr("rename target for %v is not a string", from)
		}
		if v, found := mm.Find(from); found {
			out[string(to)] = v
		}
	}
	return types.NewMap(types.DefaultTypeAdapter, out)
}

// copyInto copies m's entries into out, skipping the keys of skip.
func copyInto(out map[string]ref.Val, m traits.Mapper, skip traits.Mapper) ref.Val {
	it := m.Iterator()
	for it.HasNext() == types.True {
		k := it.Next()
		ks, ok := k.(types.String)
		if !ok {
			return types.NewErr("map key %v is not a string", k)
		}
		if skip != nil {
			if _, found := skip.Find(k); found {
				continue
			}
		}
		out[string(ks)] = m.Get(k)
	}
	return nil
}
