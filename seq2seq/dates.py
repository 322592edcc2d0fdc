"""Dates written the ways people write them, and their ISO 8601 form: the date-format task.

    Saturday, 5 December 2026      -> 2026-12-05        12/05/26         -> 2026-12-05
    the fifth of December, 2026    -> 2026-12-05        5.12.2026        -> 2026-12-05

FORMATS holds 25 ways (below); the model reads them a character at a time, lower-cased.
Dates are uniform over 1600-01-01 .. 2199-12-31, six centuries of the proleptic Gregorian
calendar (Python's datetime: weekdays before a country took up the calendar are Gregorian ones).

Numbers alone leave day and month ambiguous ("05/12/2026" is 5 December in Europe, May 12 in
the US), so each format has one reading and the set is chosen so that no string has two
(tests/test_seq2seq_data.py checks it on every generated date):
  - a four-digit year first is year, month, day: 2026-12-05, 20261205, 2026/12/05, 2026.12.05
  - slashes with a four-digit year last read day first (European): 05/12/2026, 5/12/2026
  - slashes with a two-digit year read month first (US): 12/05/26
  - dots with the year last read day first (German): 5.12.2026, 05.12.26
  - two-digit years are read as Python's strptime %y (POSIX) reads them, 69-99 as 1969-1999
    and 00-68 as 2000-2068; formats with one write only dates of those years.

`pairs` draws a format uniformly, then a date uniformly over the years it can write, and keeps
the first `count` distinct strings (ignoring case) in the order drawn; data.split_stream cuts
them into test, validation and train, so the splits are disjoint by input string (one date can
be in two splits, written two ways).
"""
import datetime

import numpy as np

FIRST, LAST = datetime.date(1600, 1, 1), datetime.date(2199, 12, 31)
TWO_DIGIT_YEARS = (datetime.date(1969, 1, 1), datetime.date(2068, 12, 31))  # strptime's %y
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
# The Associated Press's abbreviations: months of five letters or fewer are written out.
AP_MONTHS = ("Jan.", "Feb.", "March", "April", "May", "June", "July", "Aug.", "Sept.", "Oct.",
             "Nov.", "Dec.")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MESES = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
         "septiembre", "octubre", "noviembre", "diciembre")
DIAS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
_UNITS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
ORDINALS = (_UNITS + ("tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
                      "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth")
            + tuple(f"twenty-{unit}" for unit in _UNITS) + ("thirtieth", "thirty-first"))


def suffixed(day):
  """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st, 22nd, 23rd, ..., 31st."""
  suffix = "th" if day in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
  return f"{day}{suffix}"


def _mon(d):
  return MONTHS[d.month - 1][:3]


FORMATS = {
    "iso": lambda d: f"{d.year}-{d.month:02}-{d.day:02}",
    "iso_basic": lambda d: f"{d.year}{d.month:02}{d.day:02}",
    "year_slash": lambda d: f"{d.year}/{d.month:02}/{d.day:02}",
    "year_dot": lambda d: f"{d.year}.{d.month:02}.{d.day:02}",
    "day_slash": lambda d: f"{d.day:02}/{d.month:02}/{d.year}",
    "day_slash_unpadded": lambda d: f"{d.day}/{d.month}/{d.year}",
    "us_two_digit": lambda d: f"{d.month:02}/{d.day:02}/{d.year % 100:02}",
    "german": lambda d: f"{d.day}.{d.month}.{d.year}",
    "german_two_digit": lambda d: f"{d.day:02}.{d.month:02}.{d.year % 100:02}",
    "day_month": lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    "day_mon": lambda d: f"{d.day} {_mon(d)} {d.year}",
    "month_day": lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    "mon_day": lambda d: f"{_mon(d)} {d.day}, {d.year}",
    "ap_style": lambda d: f"{AP_MONTHS[d.month - 1]} {d.day}, {d.year}",
    "mon_suffixed": lambda d: f"{_mon(d)} {suffixed(d.day)} {d.year}",
    "month_suffixed": lambda d: f"{MONTHS[d.month - 1]} {suffixed(d.day)}, {d.year}",
    "suffixed_month": lambda d: f"{suffixed(d.day)} {MONTHS[d.month - 1]} {d.year}",
    "ordinal_words": lambda d: f"the {ORDINALS[d.day - 1]} of {MONTHS[d.month - 1]}, {d.year}",
    "weekday_day_month": lambda d: f"{WEEKDAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} "
                                   f"{d.year}",
    "weekday_month_day": lambda d: f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, "
                                   f"{d.year}",
    "rfc_2822": lambda d: f"{WEEKDAYS[d.weekday()][:3]}, {d.day:02} {_mon(d)} {d.year}",
    "oracle": lambda d: f"{d.day:02}-{_mon(d).upper()}-{d.year}",
    "mon_day_apostrophe": lambda d: f"{_mon(d)} {d.day} '{d.year % 100:02}",
    "spanish": lambda d: f"{d.day} de {MESES[d.month - 1]} de {d.year}",
    "spanish_weekday": lambda d: f"{DIAS[d.weekday()]}, {d.day} de {MESES[d.month - 1]} de "
                                 f"{d.year}",
}
TWO_DIGIT_YEAR_FORMATS = ("us_two_digit", "german_two_digit", "mon_day_apostrophe")


def pairs(count, seed=0):
  """`count` distinct (date as written, ISO 8601) pairs, in the order drawn (module docstring).

  Draws in blocks of numpy's generator, so the stream depends on the seed alone.
  """
  rng = np.random.default_rng(seed)
  names = list(FORMATS)
  seen, drawn = set(), []
  while len(drawn) < count:
    for name, fraction in zip(rng.choice(names, 4096), rng.random(4096)):
      first, last = TWO_DIGIT_YEARS if name in TWO_DIGIT_YEAR_FORMATS else (FIRST, LAST)
      date = first + datetime.timedelta(days=int(fraction * ((last - first).days + 1)))
      source = FORMATS[name](date)
      if source.lower() not in seen and len(drawn) < count:
        seen.add(source.lower())
        drawn.append((source, date.isoformat()))
  return drawn
