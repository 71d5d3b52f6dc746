"""A dependency outside the source directory (-d / dependencies): packed beside the code."""


def describe():
    return "external_dependency.lib1, packed by -d"
