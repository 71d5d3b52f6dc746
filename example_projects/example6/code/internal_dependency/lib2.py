"""A dependency inside the source directory: packed with the code, importable as is."""


def describe():
    return "internal_dependency.lib2, packed from the source directory"
