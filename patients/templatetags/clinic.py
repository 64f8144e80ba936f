from django import template

register = template.Library()


@register.filter
def words(code: str) -> str:
    """A snake_case code as words: "knee_valgus" -> "knee valgus"."""
    return str(code).replace("_", " ")
