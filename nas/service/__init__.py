"""The service layer: what a user can do (searches, architectures, exports, datasets, runs)
as plain functions over typed inputs that raise `nas.service.errors.UserError`. The CLI and the
HTTP API are thin adapters of it. It is the composition root: it may use `workers` (Ray)."""
