# Tiny helper library (the offline set cannot use nixpkgs' lib).
rec {
  inherit (builtins) filter elem concatStringsSep attrNames map length head tail;

  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  concatMap = f: xs: builtins.concatLists (map f xs);
  unique = xs: builtins.foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ] xs;
  subtract = xs: ys: filter (x: !(elem x ys)) xs;

  # Validates a `drop` list against the features a package knows about.
  #   features:    features this build can enable (all enabled unless dropped)
  #   unavailable: feature names that are known but never built here (accepted
  #                in `drop` as no-ops so tier definitions stay portable)
  # An unknown name is an evaluation error that names it.
  resolveFeatures = { pname, features, unavailable ? [ ], drop ? [ ] }:
    let
      known = features ++ unavailable;
      unknown = filter (d: !(elem d known)) drop;
    in
    if !(builtins.isList drop) then
      throw "armorred: ${pname}: `drop` must be a list of feature names"
    else if unknown != [ ] then
      throw ("armorred: ${pname}: unknown feature(s) in drop: ${concatStringsSep ", " unknown}"
        + (if features == [ ] then " (${pname} has no optional features)"
           else " (known: ${concatStringsSep ", " known})"))
    else {
      inherit features unavailable;
      enabled = subtract features drop;
      dropped = filter (f: elem f drop) features;
    };
}
