"""The end-of-chapter quizzes, one module per chapter: questions, options and an explanation for each option."""
