# Tiny helpers on builtins only, so that the overlay and its flag tables can be
# evaluated against a stand-in `prev` (nix/tests) without nixpkgs' lib.
rec {
  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  optionalString = cond: s: if cond then s else "";
  optionalAttrs = cond: as: if cond then as else { };
  toList = x: if builtins.isList x then x else if x == null then [ ] else [ x ];
  unique = builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];
  # xs without the elements of `remove`
  subtract = remove: xs: builtins.filter (x: !(builtins.elem x remove)) xs;
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  concatSep = builtins.concatStringsSep;
  # "a b" from [ "a" "" "b" ]
  joinFlags = xs: concatSep " " (builtins.filter (x: x != "") xs);
  splitDots = s: builtins.filter builtins.isString (builtins.split "\\." s);
  getAttrPath = path: set:
    builtins.foldl' (acc: name:
      if builtins.isAttrs acc && acc ? ${name} then acc.${name}
      else throw "armorred: nixpkgs has no attribute '${path}'") set (splitDots path);
  # lib.functionArgs: also for functors such as `.override` (lib/customisation.nix
  # mirrorFunctionArgs sets __functionArgs to the wrapped function's arguments)
  fnArgs = f:
    if builtins.isFunction f then builtins.functionArgs f
    else if builtins.isAttrs f && f ? __functor then f.__functionArgs or (fnArgs (f.__functor f))
    else { };
  nameOf = d: d.pname or (builtins.parseDrvName (d.name or "unknown")).name;
}
