{
  description = "armorred: hardened FROM-scratch OCI images built with Nix, in two tiers (hardened / locked)";

  # nixos-25.11, pinned by revision (flake.lock holds the same rev and its
  # narHash; nix/build.nix reads the pin from flake.lock without flakes).
  # To move the pin: change the rev here, run `nix flake lock`, run the tests
  # (tests/it/nix_exprs.rs checks that flake.nix, flake.lock and nix/build.nix agree).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/8fd9daa3db09ced9700431c5b7ad0e8ba199b575";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
      overlay = import ./nix/nixpkgs/overlay.nix;
    in
    {
      # The hardening overlay with the default (base) tier; adds `pkgs.armorred`
      # (armorred.nginx, armorred.redis, armorred.harden, armorred.hardenDep, …).
      overlays.default = overlay { };

      lib = {
        # overlay { hardening = { cfi; lto; safestack; }; overrideArgs; drop; package; }
        inherit overlay;
        # The packages of one image and tier, e.g.
        #   armorred.lib.hardenedPackages { system = "x86_64-linux"; package = { attr = "nginx"; };
        #     hardening = { cfi = true; lto = true; safestack = true; };
        #     overrideArgs = { withPerl = false; withMail = false; withStream = false; modules = [ ]; };
        #     drop = [ "http_perl" "http_xslt" "http_image_filter" "http_geoip" ]; }
        # Pure evaluation reads no path outside the store, so a package.file
        # is a path value here: package = { file = ./pkg.nix; }.
        hardenedPackages = { system, ... }@args:
          (import nixpkgs {
            localSystem = { inherit system; };
            overlays = [ (overlay (removeAttrs args [ "system" ])) ];
          }).armorred;
      };

      packages = forAllSystems (system: pkgs: rec {
        armorred = pkgs.callPackage ./nix/nixpkgs/armorred.nix { };
        default = armorred;
      });

      apps = forAllSystems (system: pkgs: rec {
        armorred = {
          type = "app";
          program = "${self.packages.${system}.armorred}/bin/armorred";
        };
        default = armorred;
      });

      devShells = forAllSystems (system: pkgs: {
        default = pkgs.callPackage ./nix/nixpkgs/dev-shell.nix { };
      });
    };
}
