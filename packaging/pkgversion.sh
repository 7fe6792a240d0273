#!/bin/sh
# pkgversion.sh VERSION COMMIT_UNIX_TIME : print a version that dpkg and rpm
# accept and that grows with the history (used by `make deb rpm`).
#   1.2.3                  -> 1.2.3
#   v1.2.3-4-gabcdef012    -> 1.2.3+4.gabcdef012
#   1.2.3-rc1              -> 1.2.3~rc1            (pre-releases sort before 1.2.3)
#   917e23a (no tag)       -> 0.0.0~git20251125183600.917e23a  (commit time)
#   ...-dirty              -> ... with .dirty appended
# Only [0-9A-Za-z.+~] survive: '-' is not allowed in an RPM version.
set -eu
v=${1#v}
t=${2:-0}
dirty=
case $v in *-dirty) dirty=.dirty v=${v%-dirty} ;; esac
# an untagged `git describe --always` is a bare abbreviated hash (which may start with a digit)
if printf '%s' "$v" | grep -Eq '^[0-9a-f]{7,40}$'; then v=g$v; fi
case $v in
[0-9]*)
	base=${v%%-*}
	rest=${v#"$base"}
	case $rest in
	'') out=$base ;;
	-[0-9]*-g*) rest=${rest#-}; out="$base+${rest%%-g*}.g${rest#*-g}" ;;
	*) out="$base~$(printf '%s' "${rest#-}" | tr -c '0-9A-Za-z.\n' '.')" ;;
	esac
	;;
*)
	out="0.0.0~git$(date -u -d "@$t" +%Y%m%d%H%M%S 2>/dev/null || echo 0).${v#g}"
	;;
esac
printf '%s%s\n' "$out" "$dirty" | tr -c '0-9A-Za-z.+~\n' '.'
