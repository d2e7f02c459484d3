"""`dbt.*` cross-database macros, as dbt-duckdb renders them."""


def current_timestamp():
    return "now()"


def date_trunc(datepart, date):
    return f"date_trunc('{datepart}', {date})"


def dateadd(datepart, interval, from_date_or_timestamp):
    return f"date_add({from_date_or_timestamp}, interval ({interval}) {datepart})"


def datediff(first_date, second_date, datepart):
    return f"date_diff('{datepart}', {first_date}, {second_date})"


def listagg(measure, delimiter_text="','", order_by_clause=None, limit_num=None):
    return f"string_agg({measure}, {delimiter_text} {order_by_clause or ''})"


def type_bigint():
    return "bigint"


def type_int():
    return "integer"


def type_float():
    return "float"


def type_boolean():
    return "boolean"


def type_numeric():
    return "numeric(28, 6)"


def type_string():
    return "varchar"


def type_timestamp():
    return "timestamp"
