"""The metadata index: which patients, studies, series and instances are stored, without opening files."""
