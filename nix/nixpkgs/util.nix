# Tiny helpers on builtins only, so that the overlay and its flag tables can be
# evaluated against a stand-in `prev` (nix/tests) without nixpkgs' lib.
rec {
  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
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
  nameOf = d: d.pname or (builtins.parseDrvName (d.name or "unknown")).name;
}
