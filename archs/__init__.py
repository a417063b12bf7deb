"""The model library: one .arch file per family, shared blocks in lib/.

Shipped with the package as data (`archc.archs`), so a model in any directory can
`import "lib/common.arch"`.
"""
