"""(filled in by issue 3)"""
__all__ = []
